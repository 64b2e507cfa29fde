package gateway

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// parse builds the request for a head the fast path handles, or returns
// nil: then net/http gets the connection and judges the head itself.
func (c *serverConn) parse(head []byte) *http.Request {
	eol := bytes.IndexByte(head, '\n')
	if eol < 1 || head[eol-1] != '\r' {
		return nil
	}
	line := head[:eol-1]
	rest := head[eol+1:]
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		return nil
	}
	method := knownMethod(line[:sp])
	line = line[sp+1:]
	sp = bytes.IndexByte(line, ' ')
	if method == "" || sp < 1 {
		return nil
	}
	target, proto := line[:sp], line[sp+1:]
	var minor int
	var protoName string
	switch string(proto) {
	case "HTTP/1.1":
		minor, protoName = 1, "HTTP/1.1"
	case "HTTP/1.0":
		protoName = "HTTP/1.0"
	default:
		return nil
	}
	if target[0] != '/' {
		return nil // absolute-form and asterisk-form: net/http's business
	}
	for _, b := range target {
		if b <= ' ' || b >= 0x7f {
			return nil
		}
	}

	// Header lines: count first, so that values share one backing array.
	n := bytes.Count(rest, []byte("\n")) - 1
	if n < 0 {
		return nil
	}
	h := make(http.Header, n)
	vals := make([]string, 0, n)
	var host string
	hosts := 0
	var connClose, keepAlive, pragmaNoCache bool
	for len(rest) > 2 {
		eol := bytes.IndexByte(rest, '\n')
		if eol < 1 || rest[eol-1] != '\r' {
			return nil
		}
		line := rest[:eol-1]
		rest = rest[eol+1:]
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return nil
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		if !validFieldName(name) || !validFieldValue(value) {
			return nil
		}
		key := canonicalKey(name)
		switch key {
		case "Host":
			hosts++
			host = string(value)
			continue
		case "Transfer-Encoding", "Upgrade", "Expect":
			return nil // bodies, protocol switches and 100-continue: net/http
		case "Content-Length":
			if string(value) != "0" {
				return nil
			}
		case "Connection":
			connClose = connClose || hasToken(value, "close")
			keepAlive = keepAlive || hasToken(value, "keep-alive")
		case "Pragma":
			pragmaNoCache = string(value) == "no-cache"
		}
		vals = append(vals, string(value))
		if vv, ok := h[key]; ok {
			h[key] = append(vv, vals[len(vals)-1])
		} else {
			h[key] = vals[len(vals)-1 : len(vals) : len(vals)]
		}
	}
	if hosts > 1 || (minor == 1 && hosts == 0) || !httpguts.ValidHostHeader(host) {
		return nil
	}
	if minor == 0 && pragmaNoCache {
		if _, ok := h["Cache-Control"]; !ok {
			h["Cache-Control"] = []string{"no-cache"}
		}
	}

	uri := string(target)
	u := &url.URL{}
	path, query, hasQuery := strings.Cut(uri, "?")
	if plainPath(path) {
		u.Path, u.RawQuery, u.ForceQuery = path, query, hasQuery && query == ""
	} else {
		var err error
		if u, err = url.ParseRequestURI(uri); err != nil {
			return nil
		}
	}
	r := http.Request{
		Method:     method,
		URL:        u,
		Proto:      protoName,
		ProtoMajor: 1,
		ProtoMinor: minor,
		Header:     h,
		Body:       http.NoBody,
		Host:       host,
		RemoteAddr: c.remote,
		RequestURI: uri,
		Close:      connClose || (minor == 0 && !keepAlive),
	}
	// The context says "under a server", as net/http's does: ReverseProxy
	// then aborts a broken body copy with http.ErrAbortHandler instead of
	// ending the response as if complete.
	return r.WithContext(c.ctx)
}

// knownMethod returns the standard method m names, or "". CONNECT is not
// among them: net/http handles it.
func knownMethod(m []byte) string {
	for _, k := range fastMethods {
		if string(m) == k {
			return k
		}
	}
	return ""
}

var fastMethods = [...]string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodDelete, http.MethodOptions, http.MethodPatch, http.MethodTrace}

// plainPath reports whether p needs no unescaping and escapes to itself,
// so that url.URL{Path: p} is what url.ParseRequestURI would build.
func plainPath(p string) bool {
	for i := 0; i < len(p); i++ {
		if !pathSafe[p[i]] {
			return false
		}
	}
	return true
}

var pathSafe = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "-_.~$&+,/:;=@" {
		t[c] = true
	}
	return t
}()

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func validFieldName(b []byte) bool {
	for _, c := range b {
		if !httpguts.IsTokenRune(rune(c)) {
			return false
		}
	}
	return len(b) > 0
}

// validFieldValue: visible ASCII, obs-text, space and tab; no CTLs.
func validFieldValue(b []byte) bool {
	for _, c := range b {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// hasToken reports whether the comma-separated list v holds tok.
func hasToken(v []byte, tok string) bool {
	for len(v) > 0 {
		var t []byte
		t, v, _ = bytes.Cut(v, []byte(","))
		if strings.EqualFold(string(trimOWS(t)), tok) {
			return true
		}
	}
	return false
}

// canonicalKey returns the canonical form of a header name; common names
// come from a table and cost no allocation.
func canonicalKey(name []byte) string {
	var buf [64]byte
	if len(name) > len(buf) {
		return http.CanonicalHeaderKey(string(name))
	}
	k := buf[:len(name)]
	upper := true
	for i, c := range name {
		switch {
		case upper && 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		case !upper && 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		k[i] = c
		upper = c == '-'
	}
	if s, ok := commonKeys[string(k)]; ok {
		return s
	}
	return string(k)
}

var commonKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Accept-Ranges",
		"Authorization", "Cache-Control", "Connection", "Content-Length", "Content-Type",
		"Cookie", "Date", "Dnt", "Etag", "Expect", "Forwarded", "From", "Host",
		"If-Match", "If-Modified-Since", "If-None-Match", "If-Range", "If-Unmodified-Since",
		"Origin", "Pragma", "Priority", "Range", "Referer", "Sec-Ch-Ua", "Sec-Ch-Ua-Mobile",
		"Sec-Ch-Ua-Platform", "Sec-Fetch-Dest", "Sec-Fetch-Mode", "Sec-Fetch-Site",
		"Sec-Fetch-User", "Te", "Traceparent", "Tracestate", "Baggage", "Transfer-Encoding",
		"Upgrade", "Upgrade-Insecure-Requests", "User-Agent", "Via", "X-Forwarded-For",
		"X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip", "X-Request-Id",
	} {
		m[k] = k
	}
	return m
}()
