package h1

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// exchange is one fast-path request with its response, allocated as one:
// the request, its URL, the response writer and the backing of the
// request's header values. It is not reused: the handler may keep the
// request.
type exchange struct {
	req  http.Request
	url  url.URL
	resp response
	vals [12]string
}

// parse builds the request for a head the fast path handles, in an
// exchange with its response, or returns nil: then net/http gets the
// connection and judges the head itself.
func (c *serverConn) parse(head []byte) *exchange {
	eol := bytes.IndexByte(head, '\n')
	if eol < 1 || head[eol-1] != '\r' {
		return nil
	}
	method, target, minor, ok := parseRequestLine(head[:eol-1])
	if !ok {
		return nil
	}
	x := new(exchange)
	hs := newHeadString(head)
	h, host, connClose, keepAlive, ok := parseRequestFields(head[eol+1:], minor, hs, x.vals[:])
	if !ok {
		return nil
	}
	uri := hs.of(target)
	u, ok := requestURL(uri, &x.url)
	if !ok {
		return nil
	}
	if c.base == nil {
		// The context says "under a server", as net/http's does:
		// ReverseProxy then aborts a broken body copy with
		// http.ErrAbortHandler instead of ending the response as if
		// complete. A copy of base carries it, without WithContext's
		// allocation per request.
		c.base = new(http.Request).WithContext(c.ctx)
	}
	r := &x.req
	*r = *c.base
	r.Method = method
	r.URL = u
	r.Proto = "HTTP/1.1"
	r.ProtoMajor, r.ProtoMinor = 1, minor
	r.Header = h
	r.Body = http.NoBody
	r.Host = host
	r.RemoteAddr = c.remote
	r.RequestURI = uri
	r.Close = connClose || (minor == 0 && !keepAlive)
	if minor == 0 {
		r.Proto = "HTTP/1.0"
	}
	return x
}

// parseRequestLine splits a request line the fast path handles: a known
// method, an origin-form target of visible ASCII, HTTP/1.0 or HTTP/1.1.
func parseRequestLine(line []byte) (method string, target []byte, minor int, ok bool) {
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		return "", nil, 0, false
	}
	method = knownMethod(line[:sp])
	line = line[sp+1:]
	sp = bytes.IndexByte(line, ' ')
	if method == "" || sp < 1 {
		return "", nil, 0, false
	}
	target, proto := line[:sp], line[sp+1:]
	switch string(proto) {
	case "HTTP/1.1":
		minor = 1
	case "HTTP/1.0":
	default:
		return "", nil, 0, false
	}
	if target[0] != '/' {
		return "", nil, 0, false // absolute-form and asterisk-form: net/http's business
	}
	for _, b := range target {
		if b <= ' ' || b >= 0x7f {
			return "", nil, 0, false
		}
	}
	return method, target, minor, true
}

// parseRequestFields reads the field lines of a request head (rest ends
// with the blank line). It declines bodies, protocol switches,
// 100-continue, a missing (HTTP/1.1), repeated or invalid Host, and any
// line net/http might read differently.
func parseRequestFields(rest []byte, minor int, head headString, spare []string) (h http.Header, host string, connClose, keepAlive, ok bool) {
	f, ok := newFields(rest, head, spare)
	if !ok {
		return nil, "", false, false, false
	}
	hosts := 0
	for len(rest) > 2 {
		key, value, next, ok := f.next(rest)
		if !ok {
			return nil, "", false, false, false
		}
		rest = next
		switch key {
		case "Host":
			hosts++
			host = head.of(value)
			continue
		case "Transfer-Encoding", "Upgrade", "Expect":
			return nil, "", false, false, false // bodies, protocol switches and 100-continue: net/http
		case "Content-Length":
			if string(value) != "0" {
				return nil, "", false, false, false
			}
		case "Connection":
			connClose = connClose || hasToken(value, "close")
			keepAlive = keepAlive || hasToken(value, "keep-alive")
		}
		f.add(key, value)
	}
	if hosts > 1 || (minor == 1 && hosts == 0) || !httpguts.ValidHostHeader(host) {
		return nil, "", false, false, false
	}
	fixPragma(f.h)
	return f.h, host, connClose, keepAlive, true
}

// requestURL builds the URL of an origin-form target as
// url.ParseRequestURI would, without it for a plain path: then the URL is
// into.
func requestURL(uri string, into *url.URL) (*url.URL, bool) {
	path, query, hasQuery := strings.Cut(uri, "?")
	if plainPath(path) {
		*into = url.URL{Path: path, RawQuery: query, ForceQuery: hasQuery && query == ""}
		return into, true
	}
	u, err := url.ParseRequestURI(uri)
	return u, err == nil
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
