package h1

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

	f, ok := newFields(rest)
	if !ok {
		return nil
	}
	var host string
	hosts := 0
	var connClose, keepAlive bool
	for len(rest) > 2 {
		key, value, next, ok := nextField(rest)
		if !ok {
			return nil
		}
		rest = next
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
		}
		f.add(key, value)
	}
	if hosts > 1 || (minor == 1 && hosts == 0) || !httpguts.ValidHostHeader(host) {
		return nil
	}
	h := f.h
	fixPragma(h)

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
