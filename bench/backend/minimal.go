package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"syscall"
	"time"
)

// The minimal responder: HTTP/1.1 written by hand, no net/http. Every
// GET or HEAD, whatever its path, is answered 200 with the backend's body;
// another method gets 405. Requests may be pipelined: the responses to all
// the requests one read completes go out in one write, in order. A request
// body is read by its Content-Length and dropped; a request with
// Transfer-Encoding is refused (411) and the connection closed, as is any
// head that does not parse. HTTP/1.1 connections stay open unless the
// request says Connection: close; HTTP/1.0 ones only when it says
// Connection: keep-alive (HAProxy's health check is HTTP/1.0).

const (
	contentType = "text/plain; charset=utf-8"

	readSize = 4 << 10 // a connection's first read buffer
	// maxHead bounds a request head (the buffer grows to it); a longer
	// one is answered 431 and the connection closed.
	maxHead = 8 << 10
	// maxBody bounds a declared request body; a longer one is answered
	// 413 and the connection closed.
	maxBody = 1 << 20
	// lingerTime is how long a closing connection keeps reading (and
	// dropping) what the client still sends.
	lingerTime = 2 * time.Second
)

// responder answers every connection of one backend. Read-only after
// newResponder, so safe for concurrent use.
type responder struct {
	okHead []byte // status line and headers of the 200, without Connection and the blank line
	body   []byte
}

func newResponder(body []byte) *responder {
	return &responder{
		okHead: []byte("HTTP/1.1 200 OK\r\nContent-Type: " + contentType +
			"\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n"),
		body: body,
	}
}

// serve accepts connections on ln until it is closed, then returns nil.
func (r *responder) serve(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ECONNABORTED) {
				time.Sleep(10 * time.Millisecond) // out of descriptors for a moment, or one aborted peer
				continue
			}
			return err
		}
		go r.handle(c)
	}
}

// handle serves one connection until the client closes it, an error, or a
// response that closes it.
func (r *responder) handle(c net.Conn) {
	s := session{r: r, buf: make([]byte, readSize)}
	for {
		n, err := c.Read(s.buf[s.n:])
		out, closing := s.advance(n)
		if len(out) > 0 {
			if _, werr := c.Write(out); werr != nil {
				c.Close()
				return
			}
		}
		if closing {
			lingerClose(c)
			return
		}
		if err != nil {
			c.Close()
			return
		}
	}
}

// lingerClose closes c after its last response: the write side first, then
// what the client still sends is read and dropped for a while, so that
// unread request bytes do not turn the close into a reset that could
// destroy the response on its way.
func lingerClose(c net.Conn) {
	defer c.Close()
	tc, ok := c.(*net.TCPConn)
	if !ok || tc.CloseWrite() != nil {
		return
	}
	tc.SetReadDeadline(time.Now().Add(lingerTime))
	io.Copy(io.Discard, io.LimitReader(tc, maxBody))
}

// session is the framing state of one connection: the bytes read and not
// yet consumed, and what is left of a request body to drop.
type session struct {
	r    *responder
	buf  []byte // buf[:n] holds the bytes not consumed yet
	n    int
	from int   // where the search for the end of the pending head resumes
	skip int64 // body bytes of the last request still to drop
	out  []byte
}

// advance takes n more bytes, read into buf[s.n:], and returns the
// responses to every request they complete, in order; closing says to
// close the connection once they are written. out is valid until the next
// call. Unless closing, buf[s.n:] has room for the next read.
func (s *session) advance(n int) (out []byte, closing bool) {
	s.n += n
	s.out = s.out[:0]
	p := 0
	for !closing {
		if s.skip > 0 {
			d := min(s.skip, int64(s.n-p))
			p += int(d)
			s.skip -= d
			if s.skip > 0 {
				break
			}
		}
		// Empty lines before a request line are ignored (RFC 9112, 2.2).
		for s.from == 0 && p < s.n && (s.buf[p] == '\n' || s.buf[p] == '\r' && p+1 < s.n && s.buf[p+1] == '\n') {
			p++
		}
		if p == s.n {
			break
		}
		b := s.buf[p:s.n]
		size := headLen(b, s.from)
		if size == 0 {
			s.from = max(0, len(b)-2)
			break
		}
		s.from = 0
		p += size
		req, status := parseHead(b[:size])
		if status != 0 {
			s.out = appendError(s.out, status)
			closing = true
			break
		}
		s.skip = req.length
		s.out = s.r.appendResponse(s.out, req)
		closing = !req.keepAlive
	}
	// What is left is the start of a head: move it to the front.
	s.n = copy(s.buf, s.buf[p:s.n])
	if !closing && s.n == len(s.buf) {
		if len(s.buf) >= maxHead {
			return appendError(s.out, 431), true
		}
		grown := make([]byte, min(2*len(s.buf), maxHead))
		copy(grown, s.buf[:s.n])
		s.buf = grown
	}
	return s.out, closing
}

// headLen returns the length of the request head at the start of b,
// through the empty line that ends it, or 0 when b does not hold all of it
// yet. Lines end in CRLF or a bare LF. The search for line ends starts at
// from, which must not be past the last line end b is known to hold.
func headLen(b []byte, from int) int {
	i := from
	for {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return 0
		}
		i += j + 1 // the start of the next line
		switch {
		case i < len(b) && b[i] == '\n':
			return i + 1
		case i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n':
			return i + 2
		}
	}
}

// request is what the response to one request depends on.
type request struct {
	allowed   bool // GET or HEAD; other methods get 405
	head      bool // HEAD: no body in the response
	keepAlive bool // the connection stays open after the response
	http10    bool // an HTTP/1.0 keep-alive, which the response confirms
	length    int64
}

// parseHead parses one complete request head (as headLen delimits it).
// status is non-zero when the request is refused with that status and
// the connection closed.
func parseHead(h []byte) (req request, status int) {
	line, rest := nextLine(h)
	method, rest1, ok1 := bytes.Cut(line, []byte(" "))
	target, version, ok2 := bytes.Cut(rest1, []byte(" "))
	if !ok1 || !ok2 || !isToken(method) || len(target) == 0 || bytes.IndexByte(target, '\t') >= 0 {
		return req, 400
	}
	switch string(version) {
	case "HTTP/1.1":
	case "HTTP/1.0":
		req.http10 = true
	default:
		if len(version) == 8 && bytes.HasPrefix(version, []byte("HTTP/")) && isDigit(version[5]) && version[6] == '.' && isDigit(version[7]) {
			return req, 505
		}
		return req, 400
	}
	switch string(method) {
	case "GET":
		req.allowed = true
	case "HEAD":
		req.allowed, req.head = true, true
	}
	var hosts int
	var sawLength, chunked, closeTok, keepAliveTok bool
	for {
		line, rest = nextLine(rest)
		if len(line) == 0 {
			break // the empty line that ends the head
		}
		if line[0] == ' ' || line[0] == '\t' {
			return req, 400 // obsolete line folding
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || !isToken(name) {
			return req, 400
		}
		value = bytes.Trim(value, " \t")
		switch {
		case equalFold(name, "host"):
			hosts++
		case equalFold(name, "content-length"):
			n, ok := parseLength(value)
			if !ok || sawLength && n != req.length {
				return req, 400
			}
			sawLength, req.length = true, n
		case equalFold(name, "transfer-encoding"):
			chunked = true
		case equalFold(name, "connection"):
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				tok = bytes.Trim(tok, " \t")
				closeTok = closeTok || equalFold(tok, "close")
				keepAliveTok = keepAliveTok || equalFold(tok, "keep-alive")
			}
		}
	}
	switch {
	case hosts > 1 || hosts == 0 && !req.http10:
		return req, 400 // RFC 9112, 3.2: exactly one Host in HTTP/1.1
	case chunked:
		return req, 411 // bodies are read by Content-Length only
	case req.length > maxBody:
		return req, 413
	}
	req.keepAlive = !closeTok && (!req.http10 || keepAliveTok)
	return req, 0
}

// nextLine splits b at its first LF, dropping the line's CR.
func nextLine(b []byte) (line, rest []byte) {
	line, rest, _ = bytes.Cut(b, []byte("\n"))
	return bytes.TrimSuffix(line, []byte("\r")), rest
}

// parseLength parses a Content-Length value: decimal digits only.
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isToken reports whether b is a non-empty RFC 9110 token.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', isDigit(c):
		case bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0:
		default:
			return false
		}
	}
	return true
}

// equalFold compares b with the lower-case ASCII word s, ignoring case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// appendResponse appends the response to req.
func (r *responder) appendResponse(out []byte, req request) []byte {
	if req.allowed {
		out = append(out, r.okHead...)
	} else {
		out = append(out, "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\nContent-Length: 0\r\n"...)
	}
	switch {
	case !req.keepAlive:
		out = append(out, "Connection: close\r\n"...)
	case req.http10:
		out = append(out, "Connection: keep-alive\r\n"...)
	}
	out = append(out, "\r\n"...)
	if req.allowed && !req.head {
		out = append(out, r.body...)
	}
	return out
}

// statusText names the statuses the responder refuses requests with.
var statusText = map[int]string{
	400: "Bad Request",
	411: "Length Required",
	413: "Content Too Large",
	431: "Request Header Fields Too Large",
	505: "HTTP Version Not Supported",
}

// appendError appends a refusal that closes the connection.
func appendError(out []byte, status int) []byte {
	return append(out, "HTTP/1.1 "+strconv.Itoa(status)+" "+statusText[status]+
		"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"...)
}
