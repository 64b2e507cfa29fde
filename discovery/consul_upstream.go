package discovery

import (
	"errors"
	"fmt"
	"strings"

	"github.com/switchyard-gw/switchyard/config"
)

// setUpstreamTag applies one <prefix>.<key>=<value> tag that says how to
// speak to a service (protocol, tls.*, grpc.idempotent_methods as a
// comma-separated list) or how to probe it (health.type,
// health.grpc_service). It returns errUnknownTag for any other key; an
// invalid value leaves up and h unchanged and the error says what is
// wanted.
//
// TLS files and insecure_skip_verify are config-file settings only: a tag
// could otherwise make the gateway read any file on its host or trust any
// certificate on behalf of whoever may register services.
func setUpstreamTag(up *config.Upstream, h *config.HealthOverride, key, value string) error {
	switch key {
	case "protocol":
		switch value {
		case config.ProtocolHTTP, config.ProtocolH2C, config.ProtocolHTTPS, config.ProtocolGRPC:
			up.Protocol = value
			return nil
		}
		return errors.New("want http, h2c, https or grpc")
	case "tls.enabled":
		b, err := tagBool(value)
		if err != nil {
			return err
		}
		up.TLS.Enabled = &b
	case "tls.server_name":
		if value == "" || strings.ContainsAny(value, "/: ") {
			return errors.New("want a plain host name")
		}
		up.TLS.ServerName = value
	case "tls.min_version":
		if value != "1.2" && value != "1.3" {
			return errors.New("want 1.2 or 1.3")
		}
		up.TLS.MinVersion = value
	case "tls.ca_file", "tls.cert_file", "tls.key_file", "tls.insecure_skip_verify":
		return errors.New("only the config file may set " + key)
	case "grpc.idempotent_methods":
		ms := strings.Split(value, ",")
		for _, m := range ms {
			if err := config.ValidGRPCMethod(m); err != nil {
				return fmt.Errorf("%q: %w", m, err)
			}
		}
		up.GRPC.IdempotentMethods = ms
	case "health.type":
		if value != config.ProbeHTTP && value != config.ProbeGRPC {
			return errors.New("want http or grpc")
		}
		h.Type = &value
	case "health.grpc_service":
		h.GRPCService = &value
	default:
		return errUnknownTag
	}
	return nil
}
