package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/internal/testenv"
)

// pathOf tells which side served a request: the fast path or net/http.
func pathOf(w http.ResponseWriter) string {
	if _, ok := w.(*response); ok {
		return "fast"
	}
	return "fallback"
}

// testHandler echoes what it got and produces the responses the framing
// tests need, by path.
func testHandler(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Path", pathOf(w))
	switch r.URL.Path {
	case "/empty":
		w.WriteHeader(http.StatusOK)
	case "/nocontent":
		w.WriteHeader(http.StatusNoContent)
	case "/stream":
		io.WriteString(w, "one,")
		w.(http.Flusher).Flush()
		io.WriteString(w, "two")
	case "/trailer":
		w.Header().Set("Trailer", "X-Sum")
		io.WriteString(w, "body")
		w.Header().Set("X-Sum", "42")
	case "/short":
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "12345")
	case "/panic":
		panic("boom")
	default:
		b, _ := io.ReadAll(r.Body)
		body := fmt.Sprintf("%s %s %s %q", r.Method, r.URL.RequestURI(), r.Host, b)
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		io.WriteString(w, body)
	}
}

type testServer struct {
	*Server
	addr string
	logs *testenv.SyncBuffer
	done chan error
}

func startServer(t *testing.T, h http.Handler, fallback *http.Server) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if fallback == nil {
		fallback = &http.Server{}
	}
	fallback.Handler = h
	logs := &testenv.SyncBuffer{}
	s := &testServer{
		Server: &Server{Handler: h, Fallback: fallback, Logger: slog.New(slog.NewTextHandler(logs, nil))},
		addr:   ln.Addr().String(), logs: logs, done: make(chan error, 1),
	}
	go func() { s.done <- s.Serve(StrictListener(ln, StrictOptions{})) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-s.done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
	})
	return s
}

// rawConn is a client connection that writes raw bytes and reads responses.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (r *rawConn) send(raw string) {
	r.t.Helper()
	if _, err := io.WriteString(r.c, raw); err != nil {
		r.t.Fatal(err)
	}
}

// read reads one response to a request with method and its whole body.
func (r *rawConn) read(method string) (*http.Response, string) {
	r.t.Helper()
	resp, err := http.ReadResponse(r.br, &http.Request{Method: method})
	if err != nil {
		r.t.Fatalf("reading response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatalf("reading body: %v", err)
	}
	return resp, string(b)
}

// stillServes checks that the connection answers another request.
func (r *rawConn) stillServes(after string) {
	r.t.Helper()
	r.send("GET /1 HTTP/1.1\r\nHost: h\r\n\r\n")
	if _, body := r.read("GET"); body != `GET /1 h ""` {
		r.t.Fatalf("after %s, the next response is %q", after, body)
	}
}

// closed reports whether the server closed the connection (EOF, nothing
// more to read).
func (r *rawConn) closed() bool {
	_, err := r.br.ReadByte()
	return errors.Is(err, io.EOF)
}

func TestServerAnswersSimpleRequestsOnTheFastPathWithKeepAlive(t *testing.T) {
	s := startServer(t, http.HandlerFunc(testHandler), nil)
	c := dialRaw(t, s.addr)
	for _, p := range []string{"/a?x=1", "/b/c?", "/%7Ed"} {
		c.send("GET " + p + " HTTP/1.1\r\nHost: example.test\r\nUser-Agent: t\r\n\r\n")
		resp, body := c.read("GET")
		if resp.StatusCode != 200 || resp.Header.Get("X-Path") != "fast" || resp.Close {
			t.Fatalf("%s: %d %v close=%v", p, resp.StatusCode, resp.Header, resp.Close)
		}
		if want := fmt.Sprintf("GET %s example.test \"\"", p); body != want {
			t.Fatalf("body %q, want %q", body, want)
		}
		if resp.Header.Get("Date") == "" || resp.ContentLength != int64(len(body)) {
			t.Fatalf("%s: Date %q, Content-Length %d", p, resp.Header.Get("Date"), resp.ContentLength)
		}
	}
}

func TestServerGrowsItsBufferForALongerHeadAndShrinksBack(t *testing.T) {
	s := startServer(t, http.HandlerFunc(testHandler), nil)
	c := dialRaw(t, s.addr)
	long := "GET /long HTTP/1.1\r\nHost: h\r\nCookie: " + strings.Repeat("c", 3*headBufInit) + "\r\n\r\n"
	for i, raw := range []string{long, "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n", long + long} {
		c.send(raw)
		for range strings.Count(raw, "GET ") {
			if resp, _ := c.read("GET"); resp.StatusCode != 200 || resp.Header.Get("X-Path") != "fast" {
				t.Fatalf("request %d: %d from %s", i, resp.StatusCode, resp.Header.Get("X-Path"))
			}
		}
	}
}

func TestServerAnswersPipelinedRequestsInOrderAcrossTheHandOver(t *testing.T) {
	s := startServer(t, http.HandlerFunc(testHandler), nil)
	c := dialRaw(t, s.addr)
	c.send("GET /1 HTTP/1.1\r\nHost: h\r\n\r\n" +
		"GET /2 HTTP/1.1\r\nHost: h\r\n\r\n" +
		"POST /3 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello" +
		"GET /4 HTTP/1.1\r\nHost: h\r\n\r\n")
	want := []string{`GET /1 h ""`, `GET /2 h ""`, `POST /3 h "hello"`, `GET /4 h ""`}
	paths := []string{"fast", "fast", "fallback", "fallback"}
	for i, w := range want {
		resp, body := c.read("GET")
		if body != w || resp.Header.Get("X-Path") != paths[i] {
			t.Fatalf("response %d: %q from %s, want %q from %s", i+1, body, resp.Header.Get("X-Path"), w, paths[i])
		}
	}
}

func TestServerHandsOverWhatTheFastPathDoesNotHandle(t *testing.T) {
	s := startServer(t, http.HandlerFunc(testHandler), &http.Server{MaxHeaderBytes: 64 << 10})
	long := strings.Repeat("v", headBufMax)
	for _, tc := range []struct {
		name, raw string
		status    int
	}{
		{"a body", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi", 200},
		{"a chunked body", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n", 200},
		{"100-continue", "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n", 200},
		{"an upgrade", "GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", 200},
		{"absolute form", "GET http://h/x HTTP/1.1\r\nHost: h\r\n\r\n", 200},
		{"an unknown method", "PROPFIND / HTTP/1.1\r\nHost: h\r\n\r\n", 200},
		{"a head beyond the fast path's buffer", "GET / HTTP/1.1\r\nHost: h\r\nX-Long: " + long + "\r\n\r\n", 200},
		{"no Host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"a bad header line", "GET / HTTP/1.1\r\nHost: h\r\nno colon\r\n\r\n", 400},
		{"a bad Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
		{"CL and TE (strict framing)", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, s.addr)
			c.send(tc.raw)
			resp, _ := c.read("GET")
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.status == 200 && resp.Header.Get("X-Path") != "fallback" {
				t.Fatalf("served by %q, want fallback", resp.Header.Get("X-Path"))
			}
		})
	}
}

func TestServerFramesResponsesAsNetHTTPWould(t *testing.T) {
	s := startServer(t, http.HandlerFunc(testHandler), nil)
	t.Run("an empty body has Content-Length 0", func(t *testing.T) {
		c := dialRaw(t, s.addr)
		c.send("GET /empty HTTP/1.1\r\nHost: h\r\n\r\n")
		resp, body := c.read("GET")
		if resp.ContentLength != 0 || len(resp.TransferEncoding) > 0 || body != "" {
			t.Fatalf("Content-Length %d, TE %v, body %q", resp.ContentLength, resp.TransferEncoding, body)
		}
	})
	t.Run("no length means chunked, flushed as written", func(t *testing.T) {
		c := dialRaw(t, s.addr)
		c.send("GET /stream HTTP/1.1\r\nHost: h\r\n\r\n")
		resp, body := c.read("GET")
		if !reflect.DeepEqual(resp.TransferEncoding, []string{"chunked"}) || body != "one,two" {
			t.Fatalf("TE %v, body %q", resp.TransferEncoding, body)
		}
		c.stillServes("a chunked response")
	})
	t.Run("declared trailers follow the body", func(t *testing.T) {
		c := dialRaw(t, s.addr)
		c.send("GET /trailer HTTP/1.1\r\nHost: h\r\n\r\n")
		resp, body := c.read("GET")
		if body != "body" || resp.Trailer.Get("X-Sum") != "42" || resp.Header.Get("X-Sum") != "" {
			t.Fatalf("body %q, trailer %v, header %v", body, resp.Trailer, resp.Header)
		}
	})
	t.Run("HEAD gets the headers only", func(t *testing.T) {
		c := dialRaw(t, s.addr)
		c.send("HEAD /x HTTP/1.1\r\nHost: h\r\n\r\n")
		resp, body := c.read("HEAD")
		if resp.ContentLength != int64(len(`HEAD /x h ""`)) || body != "" {
			t.Fatalf("Content-Length %d, body %q", resp.ContentLength, body)
		}
		c.stillServes("a HEAD response")
	})
	t.Run("204 has no body", func(t *testing.T) {
		c := dialRaw(t, s.addr)
		c.send("GET /nocontent HTTP/1.1\r\nHost: h\r\n\r\n")
		if resp, _ := c.read("GET"); resp.StatusCode != 204 || resp.Header.Get("Content-Length") != "" {
			t.Fatalf("%d %v", resp.StatusCode, resp.Header)
		}
		c.stillServes("a 204")
	})
	t.Run("HTTP/1.0 without a length ends with the connection", func(t *testing.T) {
		c := dialRaw(t, s.addr)
		c.send("GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
		resp, body := c.read("GET")
		if len(resp.TransferEncoding) > 0 || body != "one,two" || !resp.Close || !c.closed() {
			t.Fatalf("TE %v, body %q, close %v", resp.TransferEncoding, body, resp.Close)
		}
	})
	t.Run("HTTP/1.0 keep-alive with a length stays open", func(t *testing.T) {
		c := dialRaw(t, s.addr)
		c.send("GET /1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
		resp, _ := c.read("GET")
		if resp.Close || resp.Header.Get("Connection") != "keep-alive" {
			t.Fatalf("close %v, Connection %q", resp.Close, resp.Header.Get("Connection"))
		}
		c.send("GET /2 HTTP/1.0\r\n\r\n")
		if resp, _ := c.read("GET"); !resp.Close || !c.closed() {
			t.Fatal("HTTP/1.0 without keep-alive: connection not closed")
		}
	})
	t.Run("Connection: close is honoured", func(t *testing.T) {
		c := dialRaw(t, s.addr)
		c.send("GET /1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
		if resp, _ := c.read("GET"); !resp.Close || !c.closed() {
			t.Fatal("connection not closed")
		}
	})
	t.Run("a short body closes the connection", func(t *testing.T) {
		c := dialRaw(t, s.addr)
		c.send("GET /short HTTP/1.1\r\nHost: h\r\n\r\n")
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if b, err := io.ReadAll(resp.Body); string(b) != "12345" || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("body %q, err %v; want the 5 bytes and an unexpected EOF", b, err)
		}
	})
}

func TestServerRecoversFromAPanickingHandler(t *testing.T) {
	s := startServer(t, http.HandlerFunc(testHandler), nil)
	c := dialRaw(t, s.addr)
	c.send("GET /panic HTTP/1.1\r\nHost: h\r\n\r\n")
	if !c.closed() {
		t.Fatal("connection still open after the handler panicked")
	}
	logs := s.logs.String()
	if !strings.Contains(logs, "boom") || !strings.Contains(logs, "server_test.go") {
		t.Fatalf("panic not logged with its stack:\n%s", logs)
	}
	c2 := dialRaw(t, s.addr)
	c2.send("GET /1 HTTP/1.1\r\nHost: h\r\n\r\n")
	if _, body := c2.read("GET"); body != `GET /1 h ""` {
		t.Fatalf("after the panic: %q", body)
	}
}

func TestServerShutdownClosesIdleConnectionsAndDrainsActiveOnes(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-release
		}
		io.WriteString(w, "done")
	})
	s := startServer(t, h, nil)
	idle := dialRaw(t, s.addr)
	idle.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	idle.read("GET")
	active := dialRaw(t, s.addr)
	active.send("GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
	<-entered

	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	if !idle.closed() {
		t.Fatal("idle connection not closed by Shutdown")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) while a request was in flight", err)
	default:
	}
	close(release)
	resp, body := active.read("GET")
	if body != "done" || !resp.Close {
		t.Fatalf("in-flight response %q, close %v; want it complete, with Connection: close", body, resp.Close)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if _, err := net.Dial("tcp", s.addr); err == nil {
		t.Fatal("still accepting after Shutdown")
	}
}

// parseHeads are request heads for the parser comparison and fuzz seeds.
var parseHeads = []string{
	"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET /a/b?c=d&e HTTP/1.1\r\nHost: h:8080\r\nAccept: */*\r\nX-Dup: 1\r\nx-dup: 2\r\n\r\n",
	"HEAD /%7Euser/a%2Fb HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
	"DELETE /x? HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
	"GET /x?? HTTP/1.1\r\nHost: h\r\n\r\n",
	"OPTIONS /(a)!*' HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
	"GET //double//slash HTTP/1.1\r\nHost: h\r\nforwarded:  for=1.2.3.4 \r\n\r\n",
	"GET / HTTP/1.0\r\n\r\n",
	"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\nPragma: no-cache\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nPragma: no-cache\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nPragma: x\r\nPragma: no-cache\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
	"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nX-Tab:\tv\tw\t\r\nX-Empty:\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nX-Obs: caf\xc3\xa9\r\n\r\n",
	"get / HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET / http/1.1\r\nHost: h\r\n\r\n",
	"GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nBad Name: v\r\n\r\n",
	"GET /#frag HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nConnection: clo\u017fe\r\n\r\n",
	"GET / HTTP/1.0\r\nConnection: \u212aeep-alive\r\n\r\n",
}

// checkParse compares the fast path's parse of head with net/http's: the
// fast path may decline (nil), but what it accepts it must read as
// net/http does.
func checkParse(t *testing.T, head string) {
	t.Helper()
	if !strings.HasSuffix(head, "\r\n\r\n") || strings.Count(head, "\r\n\r\n") != 1 {
		return
	}
	c := &serverConn{remote: "192.0.2.1:1234", ctx: context.Background()}
	x := c.parse([]byte(head))
	if x == nil {
		return
	}
	got := &x.req
	want, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head)))
	if err != nil {
		t.Fatalf("fast path accepted %q, net/http rejects it: %v", head, err)
	}
	if want.Body != http.NoBody && want.ContentLength != 0 {
		t.Fatalf("fast path accepted %q, which has a body", head)
	}
	agree(t, head, []field{
		{"Method", got.Method, want.Method},
		{"URL", *got.URL, *want.URL},
		{"Proto", got.Proto, want.Proto},
		{"ProtoMinor", got.ProtoMinor, want.ProtoMinor},
		{"Header", got.Header, want.Header},
		{"Host", got.Host, want.Host},
		{"Close", got.Close, want.Close},
		{"RequestURI", got.RequestURI, want.RequestURI},
		{"ContentLength", got.ContentLength, want.ContentLength},
	})
}

// field is one value a fast-path parser and net/http must agree on.
type field struct {
	name      string
	got, want any
}

func agree(t *testing.T, input string, fields []field) {
	t.Helper()
	for _, f := range fields {
		if !reflect.DeepEqual(f.got, f.want) {
			t.Fatalf("%q: %s = %#v, net/http says %#v", input, f.name, f.got, f.want)
		}
	}
}

func TestServerParsesRequestHeadsAsNetHTTPDoes(t *testing.T) {
	accepted := 0
	for _, h := range parseHeads {
		checkParse(t, h)
		if (&serverConn{ctx: context.Background()}).parse([]byte(h)) != nil {
			accepted++
		}
	}
	if accepted < 10 {
		t.Fatalf("the fast path accepted only %d of the %d heads", accepted, len(parseHeads))
	}
}

func FuzzServerParse(f *testing.F) {
	for _, h := range parseHeads {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, head string) { checkParse(t, head) })
}

func TestServerFlushSendsWhatWasWrittenAtOnce(t *testing.T) {
	next := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first")
		w.(http.Flusher).Flush()
		<-next // the client must have read "first" by now
		io.WriteString(w, "second")
	})
	s := startServer(t, h, nil)
	c := dialRaw(t, s.addr)
	c.send("GET /sse HTTP/1.1\r\nHost: h\r\n\r\n")
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len("first"))
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "first" {
		t.Fatalf("read %q, %v before the handler finished", buf, err)
	}
	close(next)
	if rest, err := io.ReadAll(resp.Body); err != nil || string(rest) != "second" {
		t.Fatalf("then %q, %v", rest, err)
	}
}
