package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

const (
	ok1     = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 4\r\n\r\nok1\n"
	ok1Head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 4\r\n\r\n"
	ok1Last = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 4\r\nConnection: close\r\n\r\nok1\n"
	refused = "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\nContent-Length: 0\r\n\r\n"
)

// feed runs a session over the reads in chunks and returns everything it
// answered, whether it asked to close, and how many reads it took to get
// there.
func feed(t *testing.T, chunks ...string) (out string, closing bool, reads int) {
	t.Helper()
	s := session{r: newResponder([]byte("ok1\n")), buf: make([]byte, readSize)}
	var b strings.Builder
	for i, c := range chunks {
		for len(c) > 0 { // a chunk longer than the free buffer is read in parts
			n := copy(s.buf[s.n:], c)
			c = c[n:]
			o, cl := s.advance(n)
			b.Write(o)
			if cl {
				return b.String(), true, i + 1
			}
		}
	}
	return b.String(), false, len(chunks)
}

func TestPipelinedRequestsAreAnsweredInOrderInOneWrite(t *testing.T) {
	in := "GET / HTTP/1.1\r\nHost: a\r\n\r\n" +
		"HEAD /health HTTP/1.1\r\nHost: a\r\nUser-Agent: x\r\n\r\n" +
		"GET /x?y=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n"
	out, closing, _ := feed(t, in)
	if want := ok1 + ok1Head + ok1; out != want || closing {
		t.Fatalf("got %q (closing %v), want %q", out, closing, want)
	}
	// The same answers read by net/http's client parser, which is stricter
	// about framing than a comparison of bytes says.
	br := bufio.NewReader(strings.NewReader(out))
	for i, method := range []string{"GET", "HEAD", "GET"} {
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		want := "ok1\n"
		if method == "HEAD" {
			want = ""
		}
		if resp.StatusCode != 200 || resp.ContentLength != 4 || string(body) != want || resp.Close {
			t.Fatalf("response %d: %d, length %d, body %q, close %v", i, resp.StatusCode, resp.ContentLength, body, resp.Close)
		}
	}
	if br.Buffered() != 0 {
		t.Fatalf("%d bytes after the last response", br.Buffered())
	}
}

// A stream cut anywhere, also inside CRLF and inside a body, gets the same
// answers as in one piece, and none before its head is complete.
func TestHeadsAndBodiesSplitAcrossReads(t *testing.T) {
	in := "GET / HTTP/1.1\r\nHost: a\r\n\r\n" +
		"POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world" +
		"GET / HTTP/1.1\nHost: a\n\n" + // bare LF line ends
		"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n"
	want := ok1 + refused + ok1 + ok1Head
	for cut := 1; cut < len(in); cut++ {
		out, closing, _ := feed(t, in[:cut], in[cut:])
		if out != want || closing {
			t.Fatalf("cut at %d: got %q, closing %v", cut, out, closing)
		}
	}
	bytewise := make([]string, len(in))
	for i := range in {
		bytewise[i] = in[i : i+1]
	}
	if out, closing, _ := feed(t, bytewise...); out != want || closing {
		t.Fatalf("byte by byte: got %q, closing %v", out, closing)
	}
	first := "GET / HTTP/1.1\r\nHost: a\r\n\r"
	if out, _, _ := feed(t, first); out != "" {
		t.Fatalf("answered %q before the head ended", out)
	}
}

func TestConnectionCloseEndsTheConnectionAfterItsAnswer(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"HTTP/1.1 close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", ok1Last},
		{"a close token in a list", "GET / HTTP/1.1\r\nHost: a\r\nConnection: TE, Close\r\n\r\n", ok1Last},
		{"HTTP/1.0 by default", "GET /health HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n", ok1Last},
	} {
		out, closing, _ := feed(t, c.in)
		if out != c.want || !closing {
			t.Errorf("%s: got %q, closing %v; want %q and close", c.name, out, closing, c.want)
		}
	}
	keep := "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 4\r\nConnection: keep-alive\r\n\r\nok1\n"
	out, closing, _ := feed(t, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if out != keep+ok1 || closing {
		t.Fatalf("HTTP/1.0 keep-alive: got %q, closing %v", out, closing)
	}
}

func TestRequestBodiesAreReadByLengthOrRefused(t *testing.T) {
	// A GET with a body: the body is dropped, the next request answered.
	out, closing, _ := feed(t, "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nab", "cGET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if out != ok1+ok1 || closing {
		t.Fatalf("GET with a body: got %q, closing %v", out, closing)
	}
	// A body longer than the read buffer, in pieces.
	big := strings.Repeat("x", 3*readSize)
	out, closing, _ = feed(t, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12288\r\n\r\n"+big[:100], big[100:]+"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if out != refused+ok1 || closing {
		t.Fatalf("long body: got %q, closing %v", out, closing)
	}
	for _, c := range []struct{ name, in, status string }{
		{"chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "411 Length Required"},
		{"length and chunked", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", "411 Length Required"},
		{"two lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", "400 Bad Request"},
		{"a signed length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", "400 Bad Request"},
		{"a length too long", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n", "413 Content Too Large"},
	} {
		out, closing, _ := feed(t, c.in)
		want := "HTTP/1.1 " + c.status + "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
		if out != want || !closing {
			t.Errorf("%s: got %q, closing %v; want %q and close", c.name, out, closing, want)
		}
	}
}

func TestMalformedHeadsAreRefusedAndClosed(t *testing.T) {
	long := "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("y", maxHead) + "\r\n\r\n"
	for _, c := range []struct{ name, in, status string }{
		{"no version", "GET /\r\n\r\n", "400 Bad Request"},
		{"HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", "505 HTTP Version Not Supported"},
		{"no Host", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", "400 Bad Request"},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "400 Bad Request"},
		{"folded line", "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", "400 Bad Request"},
		{"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", "400 Bad Request"},
		{"head too long", long, "431 Request Header Fields Too Large"},
	} {
		out, closing, _ := feed(t, c.in)
		want := "HTTP/1.1 " + c.status + "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
		if out != want || !closing {
			t.Errorf("%s: got %q, closing %v; want %q and close", c.name, out, closing, want)
		}
	}
	// Empty lines before a request are ignored.
	if out, closing, _ := feed(t, "\r\n\n", "\r", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"); out != ok1 || closing {
		t.Fatalf("leading empty lines: got %q, closing %v", out, closing)
	}
}

// Over a real socket: pipelined requests on one keep-alive connection, a
// Connection: close that the server closes after, and a listener whose
// close ends serve.
func TestServeOverTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- newResponder([]byte("ok1\n")).serve(ln) }()
	defer func() {
		ln.Close()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
	if _, err := io.WriteString(c, req+req+"HEAD /health HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	want := ok1 + ok1 + ok1Head
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != want {
		t.Fatalf("pipelined: got %q, %v", got, err)
	}
	// The same connection again, now closing, with a request after it that
	// is not answered.
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"+req); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(c)
	if err != nil || string(rest) != ok1Last {
		t.Fatalf("closing: got %q, %v; want %q then EOF", rest, err, ok1Last)
	}

	// net/http's client over the responder: keep-alive reuse works.
	client := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 1}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	for i := range 3 {
		resp, err := client.Get("http://" + ln.Addr().String() + "/health")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, []byte("ok1\n")) {
			t.Fatalf("request %d: %d %q %v", i, resp.StatusCode, body, err)
		}
	}
}

func TestServeReturnsTheListenersError(t *testing.T) {
	want := errors.New("accept failed")
	if err := newResponder([]byte("ok1\n")).serve(failingListener{want}); !errors.Is(err, want) {
		t.Fatalf("got %v, want %v", err, want)
	}
}

type failingListener struct{ err error }

func (l failingListener) Accept() (net.Conn, error) { return nil, l.err }
func (l failingListener) Close() error              { return nil }
func (l failingListener) Addr() net.Addr            { return &net.TCPAddr{} }
