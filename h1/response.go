package h1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
)

// readResponseHead parses the response head buffered in br when it is the
// common kind: complete in the buffer, a final status, and a body framed by
// Content-Length or absent. Anything else (chunked or close-delimited
// bodies, interim responses, odd heads) returns false with nothing
// consumed, for http.ReadResponse. What it accepts it reads as
// http.ReadResponse would (FuzzResponseHead).
func readResponseHead(br *bufio.Reader, req *http.Request) (*http.Response, bool) {
	buf, _ := br.Peek(br.Buffered())
	end := bytes.Index(buf, []byte("\r\n\r\n"))
	if end < 0 {
		return nil, false
	}
	head := buf[:end+4]
	resp, ok := parseResponseHead(head, req)
	if !ok {
		return nil, false
	}
	br.Discard(len(head))
	if resp.ContentLength > 0 && req.Method != http.MethodHead {
		resp.Body = &lengthBody{br: br, left: resp.ContentLength}
	}
	return resp, true
}

func parseResponseHead(head []byte, req *http.Request) (*http.Response, bool) {
	eol := bytes.IndexByte(head, '\n')
	if eol < 1 || head[eol-1] != '\r' {
		return nil, false
	}
	line, rest := head[:eol-1], head[eol+1:]
	if len(line) < 12 || line[8] != ' ' || (len(line) > 12 && line[12] != ' ') {
		return nil, false
	}
	var proto string
	minor := 1
	switch string(line[:8]) {
	case "HTTP/1.1":
		proto = "HTTP/1.1"
	case "HTTP/1.0":
		proto, minor = "HTTP/1.0", 0
	default:
		return nil, false
	}
	code := 0
	for _, d := range line[9:12] {
		if d < '0' || d > '9' {
			return nil, false
		}
		code = code*10 + int(d-'0')
	}
	if code < 200 {
		return nil, false // interim responses loop in http.ReadResponse
	}
	for _, b := range line[9:] {
		if (b < ' ' && b != '\t') || b == 0x7f {
			return nil, false
		}
	}
	status := "200 OK"
	if string(line[9:]) != status {
		status = string(line[9:])
	}

	f, ok := newFields(rest)
	if !ok {
		return nil, false
	}
	cl := int64(-1)
	var connClose, keepAlive bool
	for len(rest) > 2 {
		key, value, next, ok := nextField(rest)
		if !ok {
			return nil, false
		}
		rest = next
		switch key {
		case "Transfer-Encoding", "Trailer":
			return nil, false
		case "Content-Length":
			v, ok := parseLength(value)
			if !ok || cl >= 0 {
				return nil, false // invalid or repeated: net/http's call
			}
			cl = v
		case "Connection":
			connClose = connClose || hasToken(value, "close")
			keepAlive = keepAlive || hasToken(value, "keep-alive")
		}
		f.add(key, value)
	}
	h := f.h
	fixPragma(h)
	closing := connClose || (minor == 0 && !keepAlive)
	if connClose {
		delete(h, "Connection")
	}
	resp := &http.Response{
		Status:     status,
		StatusCode: code,
		Proto:      proto,
		ProtoMajor: 1,
		ProtoMinor: minor,
		Header:     h,
		Body:       http.NoBody,
		Close:      closing,
		Request:    req,
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

// lengthBody reads a Content-Length body; it ends with io.EOF together
// with its last bytes, or io.ErrUnexpectedEOF when the connection ends
// first.
type lengthBody struct {
	br   *bufio.Reader
	left int64
}

func (b *lengthBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.br.Read(p)
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
