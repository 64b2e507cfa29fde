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
// http.ReadResponse would (FuzzResponseHead).
func readResponseHead(br *bufio.Reader, req *http.Request) (*http.Response, bool) {
	fr, ok := readFastResponse(br, req)
	if !ok {
		return nil, false
	}
	return &fr.resp, true
}

// fastResponse is what one exchange read by readResponseHead allocates, as
// one allocation: the response, its body and the body that pools the
// connection (Transport.exchange).
type fastResponse struct {
	resp   http.Response
	body   lengthBody
	pooled pooledBody
	vals   [8]string // the header's values, when they fit
}

// readFastResponse is readResponseHead, with the body's pooling wrapper
// allocated along.
func readFastResponse(br *bufio.Reader, req *http.Request) (*fastResponse, bool) {
	buf, _ := br.Peek(br.Buffered())
	end := bytes.Index(buf, []byte("\r\n\r\n"))
	if end < 0 {
		return nil, false
	}
	head := buf[:end+4]
	fr := new(fastResponse)
	if !parseResponseHead(head, req, &fr.resp, fr.vals[:0]) {
		return nil, false
	}
	br.Discard(len(head))
	if fr.resp.ContentLength > 0 && req.Method != http.MethodHead {
		fr.body = lengthBody{br: br, left: fr.resp.ContentLength}
		fr.resp.Body = &fr.body
	}
	return fr, true
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

// parseResponseHead fills resp with the response of a complete head of the
// common kind (see readResponseHead), or reports false. The status text and
// every field value are substrings of one copy of the head; the values'
// slices share vals when they fit.
func parseResponseHead(head []byte, req *http.Request, resp *http.Response, vals []string) bool {
	eol := bytes.IndexByte(head, '\n')
	if eol < 1 || head[eol-1] != '\r' {
		return false
	}
	minor, code, ok := parseStatusLine(head[:eol-1])
	if !ok {
		return false
	}
	hs := string(head)
	status := "200 OK"
	if hs[9:eol-1] != status {
		status = hs[9 : eol-1]
	}
	h, cl, connClose, keepAlive, ok := parseResponseFields(head[eol+1:], hs[eol+1:], vals)
	if !ok {
		return false
	}
	if connClose {
		delete(h, "Connection")
	}
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
			return false
		}
		resp.ContentLength = 0
	case cl < 0:
		return false // chunked or to the close: net/http's framing
	default:
		resp.ContentLength = cl
	}
	return true
}

// parseStatusLine reads "HTTP/1.x NNN reason" with a final status (2xx
// and up) and no control characters; the status text is line[9:].
func parseStatusLine(line []byte) (minor, code int, ok bool) {
	if len(line) < 12 || line[8] != ' ' || (len(line) > 12 && line[12] != ' ') {
		return 0, 0, false
	}
	switch string(line[:8]) {
	case "HTTP/1.1":
		minor = 1
	case "HTTP/1.0":
	default:
		return 0, 0, false
	}
	for _, d := range line[9:12] {
		if d < '0' || d > '9' {
			return 0, 0, false
		}
		code = code*10 + int(d-'0')
	}
	if code < 200 {
		return 0, 0, false // interim responses loop in http.ReadResponse
	}
	for _, b := range line[9:] {
		if (b < ' ' && b != '\t') || b == 0x7f {
			return 0, 0, false
		}
	}
	return minor, code, true
}

// parseResponseFields reads the field lines of a response head (rest ends
// with the blank line; srest is the same bytes as a string, which the
// values are taken from; vals is room for the values). cl is the Content-Length, -1 when absent. It
// declines Transfer-Encoding, Trailer, an invalid or repeated
// Content-Length and any line net/http might read differently.
func parseResponseFields(rest []byte, srest string, vals []string) (h http.Header, cl int64, connClose, keepAlive, ok bool) {
	n := bytes.Count(rest, []byte("\n")) - 1
	if n < 0 {
		return nil, 0, false, false, false
	}
	if cap(vals) < n {
		vals = make([]string, 0, n)
	}
	f := fields{h: make(http.Header, n), vals: vals[:0]}
	cl = -1
	end := cap(rest) // a value's offset in rest is end - cap(value)
	for len(rest) > 2 {
		key, value, next, ok := nextField(rest)
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
		off := end - cap(value)
		f.addString(key, srest[off:off+len(value)])
	}
	fixPragma(f.h)
	return f.h, cl, connClose, keepAlive, true
}

// addString is fields.add for a value that is a string already.
func (f *fields) addString(key, value string) {
	f.vals = append(f.vals, value)
	if vv, ok := f.h[key]; ok {
		f.h[key] = append(vv, value)
	} else {
		f.h[key] = f.vals[len(f.vals)-1 : len(f.vals) : len(f.vals)]
	}
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
