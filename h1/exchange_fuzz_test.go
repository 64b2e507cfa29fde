package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The differential fuzzer of the upstream exchange: one upstream byte
// stream answers a request through the h1 transport and through net/http's
// Transport, over socket pairs (no ports). The h1 transport must accept no
// response net/http's Transport refuses and read every one it accepts the
// same; it may refuse more only with errUpstreamFraming. It may reuse the
// connection only when net/http's own reading of the stream ends exactly at
// the end of a keep-alive response, with no interim response nobody asked
// for: the rule net/http's Transport applies, without its race (it pools a
// connection before it looks for bytes after the response).

// exchangeOracle is net/http's reading of an upstream stream in answer to
// method, as its Transport reads it (1xx skipped).
type exchangeOracle struct {
	ok       bool
	status   int
	body     []byte
	keepOpen bool // the response is delimited and keep-alive: the upstream waits for more
	boundary bool // and the stream ends exactly with it: reuse is safe
}

func readExchangeOracle(data []byte, method string) exchangeOracle {
	r := bytes.NewReader(data)
	br := bufio.NewReader(r)
	req := &http.Request{Method: method}
	stray := false
	var resp *http.Response
	for {
		var err error
		if resp, err = http.ReadResponse(br, req); err != nil {
			return exchangeOracle{}
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		if resp.StatusCode != http.StatusProcessing && resp.StatusCode != http.StatusEarlyHints {
			stray = true
		}
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return exchangeOracle{}
	}
	delimited := resp.ContentLength >= 0 || len(resp.TransferEncoding) > 0 || method == http.MethodHead
	keep := delimited && !resp.Close && resp.StatusCode != http.StatusSwitchingProtocols
	return exchangeOracle{
		ok: true, status: resp.StatusCode, body: body, keepOpen: keep,
		boundary: keep && !stray && resp.ProtoMajor == 1 && resp.ProtoMinor == 1 && br.Buffered() == 0 && r.Len() == 0,
	}
}

// pairUpstream serves data on socket pairs: the first request it gets is
// answered with data, every later one with a plain "ok"; the connection
// is half-closed after data unless the oracle says the upstream would wait.
type pairUpstream struct {
	data     []byte
	keepOpen bool
	wg       sync.WaitGroup
	sent     atomic.Bool // data was sent
	reused   atomic.Bool // a second request came on a connection
}

func (u *pairUpstream) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	conns := make([]net.Conn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "pair")
		conns[i], err = net.FileConn(f)
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	u.wg.Add(1)
	go u.serve(conns[1])
	return conns[0], nil
}

func (u *pairUpstream) serve(c net.Conn) {
	defer u.wg.Done()
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	for n := 0; ; n++ {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		if n > 0 || u.sent.Swap(true) {
			u.reused.Store(u.reused.Load() || n > 0)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			continue
		}
		if _, err := c.Write(u.data); err != nil {
			return
		}
		if !u.keepOpen {
			c.(*net.UnixConn).CloseWrite()
		}
	}
}

type exchangeOutcome struct {
	ok     bool
	err    error
	status int
	body   []byte
}

func doExchange(rt http.RoundTripper, method string) exchangeOutcome {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, "http://upstream.test/1", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return exchangeOutcome{err: err}
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return exchangeOutcome{err: err}
	}
	return exchangeOutcome{ok: true, status: resp.StatusCode, body: body}
}

func FuzzUpstreamExchange(f *testing.F) {
	for _, r := range responseHeads {
		f.Add([]byte(r.raw), r.method == http.MethodHead)
	}
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL",
		"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length : 20\r\n\r\nok",
		"HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X\r\n\r\n2\r\nok\r\n0\r\nX: 1\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nContent-Length: 2048\r\n\r\n" + string(bytes.Repeat([]byte("a"), 2048)) + "EXTRA",
	} {
		f.Add([]byte(s), false)
	}
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEVIL!"), true)
	f.Fuzz(func(t *testing.T, data []byte, head bool) {
		method := http.MethodGet
		if head {
			method = http.MethodHead
		}
		want := readExchangeOracle(data, method)

		up := &pairUpstream{data: data, keepOpen: want.keepOpen}
		h1 := NewTransport(TransportOptions{Dial: up.dial, ResponseHeaderTimeout: 2 * time.Second, IdleTimeout: time.Minute, MaxIdlePerHost: 4})
		got := doExchange(h1, method)
		var second exchangeOutcome
		if got.ok {
			second = doExchange(h1, http.MethodGet)
		}
		h1.Close()
		up.wg.Wait()

		stdUp := &pairUpstream{data: data, keepOpen: want.keepOpen}
		std := &http.Transport{DialContext: stdUp.dial, ResponseHeaderTimeout: 2 * time.Second, DisableCompression: true}
		ref := doExchange(std, method)
		std.CloseIdleConnections()
		stdUp.wg.Wait()

		switch {
		case got.ok && !ref.ok:
			t.Fatalf("h1 accepted %q (status %d) that net/http's Transport refuses: %v", data, got.status, ref.err)
		case got.ok && (got.status != ref.status || !bytes.Equal(got.body, ref.body)):
			t.Fatalf("%q: h1 read %d %q, net/http %d %q", data, got.status, got.body, ref.status, ref.body)
		case !got.ok && ref.ok && !errors.Is(got.err, errUpstreamFraming):
			t.Fatalf("h1 refused %q (%v) that net/http's Transport reads as %d %q", data, got.err, ref.status, ref.body)
		}
		if up.reused.Load() {
			if !want.boundary {
				t.Fatalf("h1 reused the connection after %q, which does not end at a keep-alive response's end", data)
			}
			if !second.ok || string(second.body) != "ok" {
				t.Fatalf("after %q the next request on the reused connection got %+v", data, second)
			}
		}
	})
}
