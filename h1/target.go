package h1

import (
	"net/http"
	"strings"
)

// OriginForm reports whether r's request-target is one a proxy may
// forward: origin-form ("/path?query"), or absolute-form with an http or
// https URL, which net/http has already split into host and path and which
// is forwarded in origin-form. Anything else (a target without a leading
// slash, an opaque URL such as "http:admin", authority-form outside
// CONNECT, asterisk-form) would reach the upstream unnormalised and be
// routed by a path it does not carry: answer 400, as net/http's own
// server, HAProxy and nginx do. Authority-form is for CONNECT alone. The
// fast path (Server) only ever serves origin-form.
func OriginForm(r *http.Request) bool {
	u := r.URL
	if r.Method == http.MethodConnect {
		return u.Host != "" && u.Path == "" && u.Opaque == ""
	}
	if u.Opaque != "" || u.User != nil {
		return false
	}
	if strings.HasPrefix(r.RequestURI, "/") {
		return true
	}
	scheme := strings.ToLower(u.Scheme)
	return (scheme == "http" || scheme == "https") && u.Host != "" && (u.Path == "" || u.Path[0] == '/')
}
