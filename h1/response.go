package h1

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// readResponseHead parses the response head buffered in br when it is the
// common kind: complete in the buffer, a final status, and a body framed by
// Content-Length or absent. Anything else (chunked or close-delimited
// bodies, interim responses, odd heads) returns false with nothing
// consumed, for http.ReadResponse. What it accepts it reads as
// http.ReadResponse would (FuzzResponseHead). The response and the reader
// of its body are built in sp when sp is not nil, so that the caller can
// allocate them with what it allocates anyway.
func readResponseHead(br *bufio.Reader, req *http.Request, sp *respSpace) (*http.Response, bool) {
	buf, _ := br.Peek(br.Buffered())
	end := bytes.Index(buf, []byte("\r\n\r\n"))
	if end < 0 {
		return nil, false
	}
	if sp == nil {
		sp = new(respSpace)
	}
	head := buf[:end+4]
	resp, ok := parseResponseHead(head, req, sp)
	if !ok {
		return nil, false
	}
	br.Discard(len(head))
	if resp.ContentLength > 0 && req.Method != http.MethodHead {
		sp.lb = lengthBody{br: br, left: resp.ContentLength}
		resp.Body = &sp.lb
	}
	return resp, true
}

// respSpace is where readResponseHead builds a response: the response, the
// reader of a Content-Length body and the backing of the header values.
type respSpace struct {
	resp http.Response
	lb   lengthBody
	vals [8]string
}

// checkResponse refuses a response head http.ReadResponse accepted but
// whose framing other HTTP/1 implementations read differently, as HAProxy
// and nginx refuse it: a version other than HTTP/1.0 or HTTP/1.1, a
// status below 100, a 101 that no request on this transport asks for (it
// sends no Upgrade), a field name with white space in it
// ("Content-Length : 5" is kept by net/http under a name of its own, not
// as the length).
func checkResponse(resp *http.Response) error {
	if resp.ProtoMajor != 1 || resp.ProtoMinor > 1 {
		return fmt.Errorf("%w: version %s", errUpstreamFraming, resp.Proto)
	}
	if resp.StatusCode < 100 {
		return fmt.Errorf("%w: status %d", errUpstreamFraming, resp.StatusCode)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return fmt.Errorf("%w: 101 Switching Protocols without an upgrade asked", errUpstreamFraming)
	}
	for k := range resp.Header {
		if strings.ContainsAny(k, " \t") {
			return fmt.Errorf("%w: white space in field name %q", errUpstreamFraming, k)
		}
	}
	return nil
}

// errUpstreamFraming marks a response refused for ambiguous framing; the
// connection it came on is closed.
var errUpstreamFraming = errors.New("upstream response framing is ambiguous")

// parseResponseHead builds the response for a complete head of the common
// kind (see readResponseHead) in sp, or reports false.
func parseResponseHead(head []byte, req *http.Request, sp *respSpace) (*http.Response, bool) {
	eol := bytes.IndexByte(head, '\n')
	if eol < 1 || head[eol-1] != '\r' {
		return nil, false
	}
	hs := newHeadString(head)
	minor, code, status, ok := parseStatusLine(head[:eol-1], hs)
	if !ok {
		return nil, false
	}
	h, cl, connClose, keepAlive, ok := parseResponseFields(head[eol+1:], hs, sp.vals[:])
	if !ok {
		return nil, false
	}
	if connClose {
		delete(h, "Connection")
	}
	resp := &sp.resp
	*resp = http.Response{
		Status:     status,
		StatusCode: code,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: minor,
		Header:     h,
		Body:       http.NoBody,
		Close:      connClose || (minor == 0 && !keepAlive),
		Request:    req,
	}
	if minor == 0 {
		resp.Proto = "HTTP/1.0"
	}
	switch {
	case req.Method == http.MethodHead:
		resp.ContentLength = cl
	case code == http.StatusNoContent || code == http.StatusNotModified:
		if cl > 0 {
			return nil, false
		}
		resp.ContentLength = 0
	case cl < 0:
		return nil, false // chunked or to the close: net/http's framing
	default:
		resp.ContentLength = cl
	}
	return resp, true
}

// parseStatusLine reads "HTTP/1.x NNN reason" with a final status (2xx
// and up) and no control characters.
func parseStatusLine(line []byte, head headString) (minor, code int, status string, ok bool) {
	if len(line) < 12 || line[8] != ' ' || (len(line) > 12 && line[12] != ' ') {
		return 0, 0, "", false
	}
	switch string(line[:8]) {
	case "HTTP/1.1":
		minor = 1
	case "HTTP/1.0":
	default:
		return 0, 0, "", false
	}
	for _, d := range line[9:12] {
		if d < '0' || d > '9' {
			return 0, 0, "", false
		}
		code = code*10 + int(d-'0')
	}
	if code < 200 {
		return 0, 0, "", false // interim responses loop in http.ReadResponse
	}
	for _, b := range line[9:] {
		if (b < ' ' && b != '\t') || b == 0x7f {
			return 0, 0, "", false
		}
	}
	status = "200 OK"
	if string(line[9:]) != status {
		status = head.of(line[9:])
	}
	return minor, code, status, true
}

// parseResponseFields reads the field lines of a response head (rest ends
// with the blank line). cl is the Content-Length, -1 when absent. It
// declines Transfer-Encoding, Trailer, an invalid or repeated
// Content-Length and any line net/http might read differently.
func parseResponseFields(rest []byte, head headString, spare []string) (h http.Header, cl int64, connClose, keepAlive, ok bool) {
	f, ok := newFields(rest, head, spare)
	if !ok {
		return nil, 0, false, false, false
	}
	cl = -1
	for len(rest) > 2 {
		key, value, next, ok := f.next(rest)
		if !ok {
			return nil, 0, false, false, false
		}
		rest = next
		switch key {
		case "Transfer-Encoding", "Trailer":
			return nil, 0, false, false, false
		case "Content-Length":
			v, ok := parseLength(value)
			if !ok || cl >= 0 {
				return nil, 0, false, false, false // invalid or repeated: net/http's call
			}
			cl = v
		case "Connection":
			connClose = connClose || hasToken(value, "close")
			keepAlive = keepAlive || hasToken(value, "keep-alive")
		}
		f.add(key, value)
	}
	fixPragma(f.h)
	return f.h, cl, connClose, keepAlive, true
}

// lengthBody reads a Content-Length body; it ends with io.EOF together
// with its last bytes, or io.ErrUnexpectedEOF when the connection ends
// first.
type lengthBody struct {
	br   *bufio.Reader
	left int64
	// conn, when set, is the connection br reads from. The last read of
	// the body goes to it directly with all of p, so that bytes the
	// upstream sent beyond its Content-Length in the same write are seen
	// (and conn marked overrun) instead of staying unread in the socket.
	conn *upConn
}

func (b *lengthBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	var n int
	var err error
	if b.conn != nil && b.br.Buffered() == 0 && int64(len(p)) > b.left {
		n, err = b.conn.Conn.Read(p)
		if int64(n) > b.left {
			b.conn.overrun = true
			n = int(b.left)
		}
	} else {
		if int64(len(p)) > b.left {
			p = p[:b.left]
		}
		n, err = b.br.Read(p)
	}
	b.left -= int64(n)
	switch {
	case b.left == 0:
		return n, io.EOF
	case err == io.EOF:
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

func (b *lengthBody) Close() error { return nil }
