package h1

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// response is the fast path's http.ResponseWriter. The status line and
// headers are written at the first body write, flush or the handler's end,
// so that an empty response gets "Content-Length: 0" instead of chunking.
type response struct {
	c       *serverConn
	req     *http.Request
	bw      *bufio.Writer // from Server.writers, between the head and finish
	header  http.Header
	status  int
	cl      int64 // declared Content-Length; -1: none
	written int64
	err     error // the first write error
	wrote   bool  // the final status was set
	headOut bool  // status line and headers are written
	chunked bool
	// trailers are the declared trailer names (the Trailer header at the
	// head), sent after a chunked body.
	trailers []string
	noBody   bool // HEAD, 1xx, 204 or 304
	close    bool // close the connection after this response
	aborted  bool // the handler panicked
}

func (w *response) Header() http.Header { return w.header }

func (w *response) WriteHeader(code int) {
	if w.wrote {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		w.writeInterim(code)
		return
	}
	w.wrote, w.status = true, code
}

// writeInterim sends a 1xx response with the current headers right away.
func (w *response) writeInterim(code int) {
	if w.err != nil || w.req.ProtoMinor == 0 {
		return // HTTP/1.0 clients get no interim responses
	}
	bw := w.writer()
	writeStatusLine(bw, code)
	for k, vv := range w.header {
		writeField(bw, k, vv)
	}
	bw.WriteString("\r\n")
	w.err = bw.Flush()
}

func (w *response) writer() *bufio.Writer {
	if w.bw == nil {
		w.bw = w.c.srv.writers.Get().(*bufio.Writer)
		w.bw.Reset(w.c.Conn)
	}
	return w.bw
}

// writeHead writes the status line and headers; final is true when the
// handler has returned, so the body is known to be empty.
func (w *response) writeHead(final bool) {
	if !w.wrote {
		w.wrote, w.status = true, http.StatusOK
	}
	w.headOut = true
	h := w.header
	code := w.status
	w.noBody = w.req.Method == http.MethodHead || code < 200 || code == http.StatusNoContent || code == http.StatusNotModified
	// The fields the head depends on, in one pass over the handler's few
	// rather than a lookup each.
	var length, trailer, conn []string
	hasTrailer, hasTE, hasDate := false, false, false
	for k, vv := range h {
		switch k {
		case "Content-Length":
			length = vv
		case "Trailer":
			trailer, hasTrailer = vv, true
		case "Connection":
			conn = vv
		case "Transfer-Encoding":
			hasTE = true
		case "Date":
			hasDate = true
		}
	}
	if v := length; len(v) > 0 {
		if n, ok := parseLength([]byte(v[0])); ok {
			w.cl = n
		} else {
			delete(h, "Content-Length")
		}
	}
	var trailers []string
	if v := trailer; len(v) > 0 {
		for _, list := range v {
			for k := range strings.SplitSeq(list, ",") {
				if k = strings.TrimSpace(k); k != "" {
					trailers = append(trailers, http.CanonicalHeaderKey(k))
				}
			}
		}
	}
	framing := "" // a framing header the handler did not set
	switch {
	case w.noBody || w.cl >= 0:
	case final && len(trailers) == 0:
		w.cl = 0
		framing = "Content-Length: 0\r\n"
	case w.req.ProtoMinor == 1:
		w.chunked = true
		framing = "Transfer-Encoding: chunked\r\n"
	default:
		w.close = true // HTTP/1.0 and no length: the end of the body is the close
	}
	if w.chunked {
		w.trailers = trailers
	} else {
		if hasTrailer {
			delete(h, "Trailer")
		}
		trailers = nil
	}
	if hasTE {
		delete(h, "Transfer-Encoding")
	}
	w.close = w.close || httpguts.HeaderValuesContainsToken(conn, "close")
	if w.c.srv != nil && w.c.srv.closing.Load() {
		w.close = true // shutting down: this is the connection's last response
	}
	switch {
	case w.close:
		h["Connection"] = []string{"close"}
	case w.req.ProtoMinor == 0:
		h["Connection"] = []string{"keep-alive"}
	}

	bw := w.writer()
	writeStatusLine(bw, code)
	for k, vv := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) || isTrailer(trailers, k) {
			continue
		}
		writeField(bw, k, vv)
	}
	bw.WriteString(framing)
	if !hasDate {
		bw.WriteString("Date: ")
		bw.WriteString(w.c.srv.date.now())
		bw.WriteString("\r\n")
	}
	bw.WriteString("\r\n")
}

func isTrailer(trailers []string, k string) bool {
	for _, t := range trailers {
		if t == k {
			return true
		}
	}
	return false
}

func (w *response) Write(p []byte) (int, error) {
	if !w.headOut {
		w.writeHead(false)
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.noBody {
		if w.req.Method == http.MethodHead {
			return len(p), nil
		}
		return 0, http.ErrBodyNotAllowed
	}
	if w.cl >= 0 && w.written+int64(len(p)) > w.cl {
		return 0, http.ErrContentLength
	}
	if len(p) == 0 {
		return 0, nil
	}
	w.written += int64(len(p))
	bw := w.bw
	if w.chunked {
		var hex [16]byte
		bw.Write(strconv.AppendInt(hex[:0], int64(len(p)), 16))
		bw.WriteString("\r\n")
	}
	n, err := bw.Write(p)
	if w.chunked && err == nil {
		_, err = bw.WriteString("\r\n")
	}
	if err != nil {
		w.err = err
	}
	return n, err
}

// Flush sends what is buffered (http.Flusher).
func (w *response) Flush() { w.FlushError() }

// FlushError is Flush with the error, for http.ResponseController.
func (w *response) FlushError() error {
	if !w.headOut {
		w.writeHead(false)
	}
	if w.err != nil {
		return w.err
	}
	w.err = w.bw.Flush()
	return w.err
}

// SetReadDeadline and SetWriteDeadline serve http.ResponseController.
func (w *response) SetReadDeadline(t time.Time) error  { return w.c.SetReadDeadline(t) }
func (w *response) SetWriteDeadline(t time.Time) error { return w.c.SetWriteDeadline(t) }

// finish completes the response after the handler returned and reports
// whether the connection may serve another request.
func (w *response) finish() bool {
	if w.aborted {
		// The handler panicked (ReverseProxy does when a body copy
		// fails): send what was written, unterminated, then close, as
		// net/http does.
		if w.bw != nil && w.err == nil {
			w.bw.Flush()
		}
		w.release()
		return false
	}
	if !w.headOut {
		w.writeHead(true)
	}
	if w.chunked && w.err == nil {
		w.bw.WriteString("0\r\n")
		for k, vv := range w.header {
			if t, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
				writeField(w.bw, http.CanonicalHeaderKey(t), vv)
			}
		}
		for _, k := range w.trailers {
			if vv := w.header[k]; len(vv) > 0 {
				writeField(w.bw, k, vv)
			}
		}
		w.bw.WriteString("\r\n")
	}
	if w.err == nil {
		w.err = w.bw.Flush()
	}
	w.release()
	if w.cl >= 0 && !w.noBody && w.written != w.cl {
		return false // short body: the client must see the connection end
	}
	return w.err == nil
}

func (w *response) release() {
	if w.bw != nil {
		w.bw.Reset(nil)
		w.c.srv.writers.Put(w.bw)
		w.bw = nil
	}
}

// writeStatusLine writes "HTTP/1.1 <code> <text>\r\n".
func writeStatusLine(bw *bufio.Writer, code int) {
	if code == http.StatusOK {
		bw.WriteString("HTTP/1.1 200 OK\r\n")
		return
	}
	var b [64]byte
	line := append(b[:0], "HTTP/1.1 "...)
	line = strconv.AppendInt(line, int64(code), 10)
	line = append(line, ' ')
	if text := http.StatusText(code); text != "" {
		line = append(line, text...)
	} else {
		line = append(line, "status code "...)
		line = strconv.AppendInt(line, int64(code), 10)
	}
	bw.Write(append(line, "\r\n"...))
}

// writeField writes one header field per value; a CR or LF in a value
// becomes a space, as net/http does, so no value can start a new line.
func writeField(bw *bufio.Writer, k string, vv []string) {
	if !httpguts.ValidHeaderFieldName(k) {
		return
	}
	for _, v := range vv {
		bw.WriteString(k)
		bw.WriteString(": ")
		if hasCRLF(v) {
			v = strings.Map(func(r rune) rune {
				if r == '\r' || r == '\n' {
					return ' '
				}
				return r
			}, v)
		}
		bw.WriteString(strings.TrimSpace(v))
		bw.WriteString("\r\n")
	}
}

// dateCache formats the current time for the Date header once a second.
// Safe for concurrent use; the zero value is ready.
type dateCache struct{ p atomic.Pointer[cachedDate] }

type cachedDate struct {
	sec int64
	s   string
}

// now returns the current time in HTTP format.
func (c *dateCache) now() string {
	now := time.Now()
	sec := now.Unix()
	if d := c.p.Load(); d != nil && d.sec == sec {
		return d.s
	}
	d := &cachedDate{sec: sec, s: now.UTC().Format(http.TimeFormat)}
	c.p.Store(d)
	return d.s
}
