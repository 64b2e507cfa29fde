package discovery

import (
	"strconv"
	"strings"

	"github.com/switchyard-gw/switchyard/config"
)

// upstreamTag applies one <prefix>.<key>=<value> tag that says how to speak
// to a service (protocol, tls.*) or how to probe it (health.type,
// health.grpc_service). It reports whether key is such a tag and, when its
// value is invalid, what is wanted instead ("" when the value was applied).
//
// TLS files and insecure_skip_verify are config-file settings only: a tag
// could otherwise make the gateway read any file on its host or trust any
// certificate on behalf of whoever may register services.
func upstreamTag(key, value string, up *config.Upstream, h *config.HealthOverride) (known bool, want string) {
	switch key {
	case "protocol":
		switch value {
		case config.ProtocolHTTP, config.ProtocolH2C, config.ProtocolHTTPS, config.ProtocolGRPC:
			up.Protocol = value
			return true, ""
		}
		return true, "want http, h2c, https or grpc"
	case "tls.enabled":
		b, err := strconv.ParseBool(value)
		if err != nil {
			return true, "want true or false"
		}
		up.TLS.Enabled = &b
	case "tls.server_name":
		if value == "" || strings.ContainsAny(value, "/: ") {
			return true, "want a plain host name"
		}
		up.TLS.ServerName = value
	case "tls.min_version":
		if value != "1.2" && value != "1.3" {
			return true, "want 1.2 or 1.3"
		}
		up.TLS.MinVersion = value
	case "tls.ca_file", "tls.cert_file", "tls.key_file", "tls.insecure_skip_verify":
		return true, "only the config file may set " + key
	case "health.type":
		if value != config.ProbeHTTP && value != config.ProbeGRPC {
			return true, "want http or grpc"
		}
		h.Type = &value
	case "health.grpc_service":
		h.GRPCService = &value
	default:
		return false, ""
	}
	return true, ""
}
