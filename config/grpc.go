package config

import (
	"errors"
	"strings"
)

// GRPC is the grpc section of a services[] entry: settings that apply to
// gRPC calls to the service.
type GRPC struct {
	// IdempotentMethods are the gRPC methods that may be sent again to
	// another instance after a failure that may have reached the upstream
	// (a reset or a closed connection before any response byte). Each is a
	// full method path, "/pkg.Service/Method", or "/pkg.Service/*" for
	// every method of a service. Nil means unset (tags may fill it); no
	// method is marked by default.
	IdempotentMethods []string `mapstructure:"idempotent_methods"`
}

// Idempotent reports whether the gRPC method at path (":path" of the
// call, "/pkg.Service/Method") is marked idempotent. The patterns must
// have passed ValidGRPCMethod.
func (g GRPC) Idempotent(path string) bool {
	for _, m := range g.IdempotentMethods {
		if svc, ok := strings.CutSuffix(m, "/*"); ok {
			rest, ok := strings.CutPrefix(path, svc+"/")
			if ok && rest != "" && !strings.Contains(rest, "/") {
				return true
			}
		} else if path == m {
			return true
		}
	}
	return false
}

// validate checks the section of a service with protocol proto; key is
// the section's key. With open (the consul provider, no protocol in the
// file) the protocol may still come from tags.
func (g GRPC) validate(key, proto string, open bool) error {
	k := key + ".idempotent_methods"
	if len(g.IdempotentMethods) > 0 && proto != ProtocolGRPC && !open {
		return bad(k, strings.Join(g.IdempotentMethods, ","), "gRPC settings need protocol grpc (protocol is %s)", proto)
	}
	for i, m := range g.IdempotentMethods {
		if err := ValidGRPCMethod(m); err != nil {
			return bad(k, g.IdempotentMethods[i], "%v", err)
		}
	}
	return nil
}

// ValidGRPCMethod checks one idempotent_methods pattern: "/pkg.Service/Method"
// or "/pkg.Service/*". The error says what is wanted.
func ValidGRPCMethod(m string) error {
	svc, method, ok := strings.Cut(strings.TrimPrefix(m, "/"), "/")
	switch {
	case !strings.HasPrefix(m, "/") || !ok || svc == "" || method == "":
		return errGRPCMethod
	case strings.ContainsAny(svc, "*/ \t") || strings.ContainsAny(method, "/ \t"):
		return errGRPCMethod
	case method != "*" && strings.Contains(method, "*"):
		return errGRPCMethod
	}
	return nil
}

var errGRPCMethod = errors.New(`want a full method path "/pkg.Service/Method" or "/pkg.Service/*"`)
