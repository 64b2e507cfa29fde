package gateway

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"maps"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/discovery"
	"github.com/switchyard-gw/switchyard/h1"
)

// rawUpstream answers every request it reads, on any connection, with the
// bytes of its current answer, and closes the connection after an answer
// marked so. It keeps the last request it read. Requests must come one at
// a time.
type rawUpstream struct {
	ln net.Listener
	wg sync.WaitGroup

	mu      sync.Mutex
	answer  string
	close   bool
	release chan struct{} // when set, the answer's rest after the first part waits for it
	rest    string
	last    *http.Request
	conns   map[net.Conn]struct{}
}

func newRawUpstream(t *testing.T) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{ln: ln, conns: map[net.Conn]struct{}{}}
	u.wg.Add(1)
	go u.serve()
	t.Cleanup(func() {
		ln.Close()
		u.mu.Lock()
		for c := range u.conns {
			c.Close()
		}
		u.mu.Unlock()
		u.wg.Wait()
	})
	return u
}

func (u *rawUpstream) addr() string { return u.ln.Addr().String() }

func (u *rawUpstream) set(answer string, close bool) {
	u.mu.Lock()
	u.answer, u.close, u.last = answer, close, nil
	u.mu.Unlock()
}

func (u *rawUpstream) lastRequest() *http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last
}

func (u *rawUpstream) serve() {
	defer u.wg.Done()
	for {
		c, err := u.ln.Accept()
		if err != nil {
			return
		}
		u.mu.Lock()
		u.conns[c] = struct{}{}
		u.mu.Unlock()
		u.wg.Add(1)
		go u.serveConn(c)
	}
}

func (u *rawUpstream) serveConn(c net.Conn) {
	defer u.wg.Done()
	defer func() {
		u.mu.Lock()
		delete(u.conns, c)
		u.mu.Unlock()
		c.Close()
	}()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		u.mu.Lock()
		u.last = req
		answer, closeAfter, release, rest := u.answer, u.close, u.release, u.rest
		u.mu.Unlock()
		if _, err := io.WriteString(c, answer); err != nil {
			return
		}
		if release != nil {
			<-release
			if _, err := io.WriteString(c, rest); err != nil {
				return
			}
		}
		if closeAfter {
			return
		}
	}
}

// exchange is what a client and the upstream saw of one request.
type exchange struct {
	Status      int
	Proto       string
	Header      http.Header
	TE          []string
	Length      int64
	Body        string
	BodyErr     bool
	Trailer     http.Header
	Close       bool
	UpMethod    string
	UpURI       string
	UpHost      string
	UpHeader    http.Header
	UpLength    int64
	UpTE        []string
	UpSawAnswer bool
}

// roundTrip sends raw on a new connection to front and reads the answer.
func roundTrip(t *testing.T, front, method, raw string) exchange {
	t.Helper()
	c, err := net.Dial("tcp", front)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		return exchange{Status: -1, Body: err.Error()}
	}
	body, berr := io.ReadAll(resp.Body)
	resp.Header.Del("Date")
	return exchange{Status: resp.StatusCode, Proto: resp.Proto, Header: resp.Header, TE: resp.TransferEncoding,
		Length: resp.ContentLength, Body: string(body), BodyErr: berr != nil, Trailer: resp.Trailer, Close: resp.Close}
}

// pairGateways returns two gateways on up, the fast core on in the first
// and off in the second, each behind h1.Server and net/http's server.
func pairGateways(t *testing.T, cfg config.Proxy, up string) (fast, slow *Gateway, fronts map[string][2]string) {
	t.Helper()
	mk := func(noFast bool) *Gateway {
		g, err := New(Options{Proxy: cfg})
		if err != nil {
			t.Fatal(err)
		}
		g.noFast = noFast
		g.SetRoutes([]config.Route{{PathPrefix: "/strip", Service: "web", StripPrefix: true}, {PathPrefix: "/", Service: "web"}})
		g.SetHealthy("web", []discovery.Instance{{ID: "1", Address: up}}, false)
		t.Cleanup(g.CloseIdleConnections)
		return g
	}
	fast, slow = mk(false), mk(true)
	listen := func(g *Gateway, h1Front bool) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		if h1Front {
			s := &h1.Server{Handler: g, Fallback: &http.Server{Handler: g}}
			go func() { s.Serve(ln); close(done) }()
			t.Cleanup(func() { s.Close(); <-done })
		} else {
			s := &http.Server{Handler: g}
			go func() { s.Serve(ln); close(done) }()
			t.Cleanup(func() { s.Close(); <-done })
		}
		return ln.Addr().String()
	}
	fronts = map[string][2]string{
		"h1.Server": {listen(fast, true), listen(slow, true)},
		"net/http":  {listen(fast, false), listen(slow, false)},
	}
	return fast, slow, fronts
}

var fastRequests = []struct{ name, method, raw string }{
	{"plain", "GET", "GET /a/b?x=1&y=%20 HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: t/1\r\nAccept: */*\r\n\r\n"},
	{"no user agent", "GET", "GET / HTTP/1.1\r\nHost: shop.example\r\n\r\n"},
	{"hop-by-hop", "GET", "GET /h HTTP/1.1\r\nHost: shop.example\r\nConnection: X-Secret, keep-alive, x-forwarded-host\r\n" +
		"X-Secret: 1\r\nKeep-Alive: 5\r\nTe: trailers, deflate\r\nProxy-Authorization: Basic eA==\r\nProxy-Connection: keep-alive\r\n" +
		"Trailer: X-T\r\nX-Keep: yes\r\nX-Keep: twice\r\n\r\n"},
	{"forwarding", "GET", "GET /f HTTP/1.1\r\nHost: shop.example\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-For: 198.51.100.1\r\n" +
		"Forwarded: for=203.0.113.9\r\nX-Forwarded-Host: origin.example\r\nX-Forwarded-Proto: https\r\n\r\n"},
	{"forwarding listed in Connection", "GET", "GET /f HTTP/1.1\r\nHost: shop.example\r\nConnection: X-Forwarded-For, Forwarded, X-Forwarded-Proto\r\n" +
		"X-Forwarded-For: 203.0.113.9\r\nForwarded: for=203.0.113.9\r\nX-Forwarded-Host: origin.example\r\nX-Forwarded-Proto: https\r\n\r\n"},
	{"user agent listed in Connection", "GET", "GET / HTTP/1.1\r\nHost: shop.example\r\nConnection: User-Agent\r\nUser-Agent: t/1\r\n\r\n"},
	{"head", "HEAD", "HEAD /h HTTP/1.1\r\nHost: shop.example\r\n\r\n"},
	{"http/1.0", "GET", "GET /old HTTP/1.0\r\nHost: shop.example\r\nConnection: keep-alive\r\n\r\n"},
	{"delete", "DELETE", "DELETE /strip/item/1 HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 0\r\n\r\n"},
	{"post without body", "POST", "POST /form HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 0\r\n\r\n"},
	{"odd path", "GET", "GET //a/./b/../c/ HTTP/1.1\r\nHost: shop.example\r\nPragma: no-cache\r\n\r\n"},
}

var fastAnswers = []struct {
	name, raw string
	close     bool
	// headOnly: the answer fits a HEAD request only; emptyStream: a
	// streamed answer without body, whose framing differs (see
	// TestFastCoreMatchesReverseProxy).
	headOnly, emptyStream bool
}{
	{"length and hop-by-hop", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: X-Up, keep-alive\r\nX-Up: 1\r\nKeep-Alive: timeout=5\r\n" +
		"Proxy-Authenticate: Basic\r\nUpgrade: h2c\r\nX-Keep: 1\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Type: text/plain\r\n\r\nhello", false, false, false},
	// Streamed answers carry a Content-Type: net/http's server would sniff
	// one at the first write before the head was flushed, and
	// ReverseProxy flushes from a timer's goroutine (see emptyStream).
	{"chunked with trailer", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n5\r\nhello\r\n3\r\nabc\r\n0\r\nX-T: v\r\n\r\n", false, false, false},
	{"chunked with undeclared trailer", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-U: v\r\n\r\n", false, false, false},
	{"chunked empty", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false, false, true},
	{"no content", "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n", false, false, false},
	{"not modified", "HTTP/1.1 304 Not Modified\r\nEtag: \"x\"\r\nContent-Length: 0\r\n\r\n", false, false, false},
	{"head length", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", false, true, false},
	{"head without length", "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n", false, true, false},
	{"until close", "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end", true, false, false},
	{"connection close", "HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 2\r\n\r\nno", true, false, false},
	{"event stream", "HTTP/1.1 200 OK\r\nContent-Type: Text/Event-Stream; charset=utf-8\r\nContent-Length: 7\r\n\r\ndata: 1", false, false, false},
	{"early hints", "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false, false, false},
	{"upstream error status", "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 3\r\nContent-Length: 4\r\n\r\nbusy", false, false, false},
	{"unasked switch", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n", true, false, false},
	{"short body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", true, false, false},
	{"empty", "", true, false, false},
}

// TestFastCoreMatchesReverseProxy sends the same requests through the fast
// core and through ReverseProxy, to the same upstream answers, and
// compares what the upstream and the client saw.
func TestFastCoreMatchesReverseProxy(t *testing.T) {
	for _, trusted := range []bool{false, true} {
		t.Run(fmt.Sprintf("trusted=%v", trusted), func(t *testing.T) {
			cfg := testProxyConfig()
			cfg.Retries = 0
			if trusted {
				cfg.TrustedProxies, _ = config.ParseCIDRs([]string{"127.0.0.0/8"})
			}
			up := newRawUpstream(t)
			fast, _, fronts := pairGateways(t, cfg, up.addr())
			for _, rq := range fastRequests {
				r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(rq.raw)))
				if err != nil {
					t.Fatal(err)
				}
				if !fast.fastEligible(r, nil, false) {
					t.Fatalf("%s: not for the fast core", rq.name)
				}
			}
			for frontName, pair := range fronts {
				for _, rq := range fastRequests {
					for _, an := range fastAnswers {
						if an.headOnly && rq.method != "HEAD" {
							continue
						}
						var got [2]exchange
						for i, front := range pair {
							up.set(an.raw, an.close)
							got[i] = roundTrip(t, front, rq.method, rq.raw)
							if r := up.lastRequest(); r != nil {
								got[i].UpSawAnswer = true
								got[i].UpMethod, got[i].UpURI, got[i].UpHost = r.Method, r.RequestURI, r.Host
								got[i].UpHeader, got[i].UpLength, got[i].UpTE = r.Header, r.ContentLength, r.TransferEncoding
							}
						}
						if an.emptyStream && rq.method != "HEAD" {
							// The fast core sends the head of a streamed
							// answer at once, as ReverseProxy means to: an
							// empty body then goes chunked (or to the close,
							// HTTP/1.0). ReverseProxy sends it from a timer's
							// goroutine, which mostly loses the race with
							// the body's end: Content-Length: 0.
							for i := range got {
								got[i].TE, got[i].Length, got[i].Close = nil, 0, false
								delete(got[i].Header, "Content-Length")
								delete(got[i].Header, "Connection")
							}
						}
						if !reflect.DeepEqual(got[0], got[1]) {
							t.Errorf("%s, %s, %s:\nfast core:      %+v\nReverseProxy:   %+v", frontName, rq.name, an.name, got[0], got[1])
						}
					}
				}
			}
		})
	}
}

// TestFastCoreForwardsWhatItShould checks what the comparison with
// ReverseProxy cannot: that the fields are as documented.
func TestFastCoreForwardsWhatItShould(t *testing.T) {
	up := newRawUpstream(t)
	_, _, fronts := pairGateways(t, testProxyConfig(), up.addr())
	up.set(fastAnswers[0].raw, false)
	ex := roundTrip(t, fronts["h1.Server"][0], "GET", fastRequests[2].raw)
	r := up.lastRequest()
	if r == nil {
		t.Fatal("the upstream saw no request")
	}
	for _, k := range []string{"X-Secret", "Keep-Alive", "Proxy-Authorization", "Proxy-Connection", "Trailer", "Connection"} {
		if v, ok := r.Header[k]; ok {
			t.Errorf("upstream got hop-by-hop %s: %q", k, v)
		}
	}
	if got := r.Header.Values("X-Keep"); !slices.Equal(got, []string{"yes", "twice"}) {
		t.Errorf("X-Keep = %q, want both values", got)
	}
	if got := r.Header.Get("Te"); got != "trailers" {
		t.Errorf("Te = %q, want trailers", got)
	}
	if got := r.Header.Get("X-Forwarded-For"); got != "127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q", got)
	}
	if got := r.Header.Get("X-Forwarded-Host"); got != "shop.example" {
		t.Errorf("X-Forwarded-Host = %q", got)
	}
	for _, k := range []string{"X-Up", "Keep-Alive", "Proxy-Authenticate", "Upgrade"} {
		if v, ok := ex.Header[k]; ok {
			t.Errorf("client got hop-by-hop %s: %q", k, v)
		}
	}
	if got := ex.Header.Values("Set-Cookie"); !slices.Equal(got, []string{"a=1", "b=2"}) || ex.Body != "hello" {
		t.Errorf("Set-Cookie %q body %q", got, ex.Body)
	}
}

// TestFastCoreFlushesStreams checks that a body without a length, or an
// event stream, reaches the client as it comes, behind either server.
func TestFastCoreFlushesStreams(t *testing.T) {
	cases := []struct {
		name, first, rest, want string
		close                   bool
	}{
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nfirst\n\r\n", "4\r\nrest\r\n0\r\n\r\n", "first\n", false},
		{"event stream with length", "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 18\r\n\r\ndata: first\n\n", "more\n\n", "data: first\n", false},
		{"until close", "HTTP/1.1 200 OK\r\n\r\nfirst\n", "rest", "first\n", true},
	}
	up := newRawUpstream(t)
	_, _, fronts := pairGateways(t, testProxyConfig(), up.addr())
	for frontName, pair := range fronts {
		for _, c := range cases {
			t.Run(frontName+"/"+c.name, func(t *testing.T) {
				release := make(chan struct{})
				up.mu.Lock()
				up.answer, up.close, up.release, up.rest = c.first, c.close, release, c.rest
				up.mu.Unlock()
				defer func() {
					up.mu.Lock()
					up.release = nil
					up.mu.Unlock()
				}()
				conn, err := net.Dial("tcp", pair[0])
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				io.WriteString(conn, "GET /s HTTP/1.1\r\nHost: x\r\n\r\n")
				resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
				if err != nil {
					close(release)
					t.Fatal(err)
				}
				line, err := bufio.NewReader(resp.Body).ReadString('\n')
				close(release)
				if err != nil || line != c.want {
					t.Fatalf("first line %q, %v: held back", line, err)
				}
			})
		}
	}
}

func TestFastCoreHandsOffWhatItDoesNotCover(t *testing.T) {
	g, err := New(Options{Proxy: testProxyConfig()})
	if err != nil {
		t.Fatal(err)
	}
	req := func(raw string) *http.Request {
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	h2c := &protoTransport{scheme: "http"}
	for _, c := range []struct {
		name  string
		r     *http.Request
		proto *protoTransport
		grpc  bool
	}{
		{"body", req("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"), nil, false},
		{"chunked body", req("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), nil, false},
		{"upgrade", req("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"), nil, false},
		{"h2c upgrade", req("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"), nil, false},
		{"h2c service", req("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), h2c, false},
		{"grpc", req("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), nil, true},
		{"query with semicolon", req("GET /?a=1;b=2 HTTP/1.1\r\nHost: x\r\n\r\n"), nil, false},
		{"query with bad escape", req("GET /?a=%zz HTTP/1.1\r\nHost: x\r\n\r\n"), nil, false},
		{"query ending in an escape", req("GET /?a=%2 HTTP/1.1\r\nHost: x\r\n\r\n"), nil, false},
		{"query with 10001 parameters", req("GET /?" + strings.Repeat("a&", 10000) + "a HTTP/1.1\r\nHost: x\r\n\r\n"), nil, false},
	} {
		if g.fastEligible(c.r, c.proto, c.grpc) {
			t.Errorf("%s: taken by the fast core", c.name)
		}
	}
	if !g.fastEligible(req("GET /?"+strings.Repeat("a&", 9999)+"a%41 HTTP/1.1\r\nHost: x\r\n\r\n"), nil, false) {
		t.Error("a query ReverseProxy keeps is not taken by the fast core")
	}
}

// TestDelCanonicalIsHeaderDel compares delCanonical with Header.Del.
func TestDelCanonicalIsHeaderDel(t *testing.T) {
	keys := []string{"X-Up", "Keep-Alive", "x-up", "keep-alive", "A B", "a b", "Ümlaut", "X_y", strings.Repeat("a", 70), http.CanonicalHeaderKey(strings.Repeat("a", 70))}
	names := append(slices.Clone(keys), "X-UP", "kEEP-aLIVE", "x-y", "x_y", "", "-", "a-", "ümlaut", strings.Repeat("A", 70))
	for _, name := range names {
		h1, h2 := http.Header{}, http.Header{}
		for _, k := range keys {
			h1[k], h2[k] = []string{"v"}, []string{"v"}
		}
		h1.Del(name)
		delCanonical(h2, name)
		if !maps.EqualFunc(h1, h2, slices.Equal) {
			t.Errorf("%q: Del left %v, delCanonical %v", name, slices.Sorted(maps.Keys(h1)), slices.Sorted(maps.Keys(h2)))
		}
	}
}

func FuzzEventStream(f *testing.F) {
	for _, s := range []string{"text/event-stream", "Text/Event-Stream; charset=utf-8", " text/event-stream ", "text/event-streams",
		"text/event-stream;", "text/event-stream; a", "text/plain; x=text/event-stream", "TEXT/EVENT-STREAM", "text/event-stream\u212a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ct string) {
		base, _, _ := mime.ParseMediaType(ct)
		if got, want := eventStream(ct), base == "text/event-stream"; got != want {
			t.Fatalf("eventStream(%q) = %v, mime says %v", ct, got, want)
		}
	})
}

// TestAddHeaderIsCopyHeader compares addHeader with adding each value.
func TestAddHeaderIsCopyHeader(t *testing.T) {
	spare := append(make([]string, 0, 4), "3") // room to append in place
	src := http.Header{"A": {"1", "2"}, "B": spare, "empty": nil, "lower": {"x"}, "C": {}}
	want := http.Header{"A": {"0"}, "Lower": {"y"}}
	got := http.Header{"A": {"0"}, "Lower": {"y"}}
	for k, vv := range src {
		for _, v := range vv {
			want.Add(k, v)
		}
	}
	addHeader(got, src)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("addHeader gave %v, Header.Add %v", got, want)
	}
	got.Add("B", "4") // must not write into src's values
	if spare[:2][1] != "" {
		t.Fatalf("Add wrote into the source's values: %q", spare[:2])
	}
}

// captureTransport answers every request with 204 and keeps the last
// request's header and target.
type captureTransport struct {
	mu   sync.Mutex
	last *http.Request
}

func (c *captureTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.last = &http.Request{Method: req.Method, Host: req.Host, URL: &url.URL{Path: req.URL.Path, RawQuery: req.URL.RawQuery},
		Header: req.Header.Clone(), Close: req.Close}
	c.mu.Unlock()
	return &http.Response{StatusCode: http.StatusNoContent, Header: http.Header{}, Body: http.NoBody, Request: req}, nil
}

// TestFastCoreBuildsTheRequestReverseProxyWould compares the outgoing
// request of both, for TLS clients too, from a trusted peer or not.
func TestFastCoreBuildsTheRequestReverseProxyWould(t *testing.T) {
	for _, trusted := range []bool{false, true} {
		cfg := testProxyConfig()
		if trusted {
			cfg.TrustedProxies, _ = config.ParseCIDRs([]string{"192.0.2.0/24"})
		}
		var gs [2]*Gateway
		var caps [2]*captureTransport
		for i := range gs {
			caps[i] = &captureTransport{}
			g, err := New(Options{Proxy: cfg, Transport: caps[i]})
			if err != nil {
				t.Fatal(err)
			}
			g.noFast = i == 1
			g.SetRoutes([]config.Route{{PathPrefix: "/strip", Service: "web", StripPrefix: true}, {PathPrefix: "/", Service: "web"}})
			g.SetHealthy("web", []discovery.Instance{{ID: "1", Address: "192.0.2.10:80"}}, false)
			gs[i] = g
		}
		for _, rq := range fastRequests {
			for _, tls := range []bool{false, true} {
				var got [2]*http.Request
				for i, g := range gs {
					r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(rq.raw)))
					if err != nil {
						t.Fatal(err)
					}
					r.RemoteAddr = "192.0.2.1:1234"
					if tls {
						r.TLS = &tlsState
					}
					w := httptest.NewRecorder()
					g.ServeHTTP(w, r)
					if w.Code != http.StatusNoContent {
						t.Fatalf("%s: status %d", rq.name, w.Code)
					}
					got[i] = caps[i].last
				}
				if !reflect.DeepEqual(got[0], got[1]) {
					t.Errorf("trusted=%v tls=%v %s:\nfast core:    %+v\nReverseProxy: %+v", trusted, tls, rq.name, got[0], got[1])
				}
			}
		}
	}
}

var tlsState = tls.ConnectionState{HandshakeComplete: true}
