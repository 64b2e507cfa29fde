package faults

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/config"
)

// evilResponse is a complete response a misbehaving backend adds where it
// does not belong; a client that receives it got bytes not meant for it.
const evilResponse = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL"

// upstreamScript is what a malicious backend writes in answer to one
// request. Each element is written with its own Write call; close ends the
// connection after them.
type upstreamScript struct {
	name   string
	writes []string
	close  bool
	head   bool // the request is a HEAD
	status int  // the status the first client must get; 0: any
}

func upstreamScripts() []upstreamScript {
	long := strings.Repeat("a", 4096)
	return []upstreamScript{
		{name: "body longer than Content-Length in one write", writes: []string{"HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n" + long + evilResponse}},
		{name: "body longer than Content-Length, small", writes: []string{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + evilResponse}},
		{name: "bytes shortly after a 200 with Content-Length", writes: []string{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", evilResponse}},
		{name: "bytes shortly after a long 200", writes: []string{"HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n" + long, evilResponse}},
		{name: "bytes shortly after a 204", writes: []string{"HTTP/1.1 204 No Content\r\n\r\n", evilResponse}},
		{name: "bytes with a 204", writes: []string{"HTTP/1.1 204 No Content\r\n\r\n" + evilResponse}},
		{name: "bytes shortly after a 304", writes: []string{"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n", evilResponse}},
		{name: "a body for HEAD", head: true, writes: []string{"HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(evilResponse)) + "\r\n\r\n", evilResponse}},
		{name: "a body for HEAD in one write", head: true, writes: []string{"HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(evilResponse)) + "\r\n\r\n" + evilResponse}},
		{name: "unsolicited 101", status: 502, writes: []string{"HTTP/1.1 101 Switching Protocols\r\nUpgrade: evil\r\nConnection: Upgrade\r\n\r\n", evilResponse}},
		{name: "stray 100 then a final response then bytes", writes: []string{"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", evilResponse}},
		{name: "two different Content-Lengths", status: 502, writes: []string{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: " + strconv.Itoa(2+len(evilResponse)) + "\r\n\r\nok" + evilResponse}},
		{name: "Content-Length with a space before the colon", status: 502, writes: []string{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length : " + strconv.Itoa(2+len(evilResponse)) + "\r\n\r\nok" + evilResponse}},
		{name: "HTTP/2.0 status line", status: 502, writes: []string{"HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok", evilResponse}},
		{name: "HTTP/1.2 status line", status: 502, writes: []string{"HTTP/1.2 200 OK\r\nContent-Length: 2\r\n\r\nok", evilResponse}},
		{name: "ICY status line", status: 502, writes: []string{"ICY 200 OK\r\nContent-Length: 2\r\n\r\nok", evilResponse}},
		{name: "short body then close", close: true, writes: []string{"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"}},
		{name: "bad status code", status: 502, writes: []string{"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok", evilResponse}},
		{name: "status line without a code", status: 502, writes: []string{"HTTP/1.1 OK\r\nContent-Length: 2\r\n\r\nok", evilResponse}},
		{name: "bare CR in a header", writes: []string{"HTTP/1.1 200 OK\r\nX: a\rContent-Length: 40\r\nContent-Length: 2\r\n\r\nok", evilResponse}},
		{name: "NUL in a header", writes: []string{"HTTP/1.1 200 OK\r\nX: a\x00b\r\nContent-Length: 2\r\n\r\nok", evilResponse}},
		{name: "obs-fold", writes: []string{"HTTP/1.1 200 OK\r\nX: a\r\n Content-Length: 40\r\nContent-Length: 2\r\n\r\nok", evilResponse}},
		{name: "chunked with trailers then bytes", writes: []string{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n2\r\nok\r\n0\r\nX-T: 1\r\n\r\n", evilResponse}},
		{name: "chunked with bytes after the last chunk", writes: []string{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n" + evilResponse}},
		{name: "close-delimited body", close: true, writes: []string{"HTTP/1.1 200 OK\r\n\r\nuntil the end " + evilResponse}},
	}
}

// scriptedBackend answers /evil/<n> with upstreamScripts()[n] and
// /good?id=X with "good X", on keep-alive connections; /health is 200.
func scriptedBackend(t *testing.T, scripts []upstreamScript) string {
	t.Helper()
	return startTCPServer(t, func(c net.Conn) { serveScripted(c, scripts) }).addr()
}

func serveScripted(c net.Conn, scripts []upstreamScript) {
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		if n, ok := strings.CutPrefix(req.URL.Path, "/evil/"); ok {
			i, _ := strconv.Atoi(n)
			s := scripts[i]
			for _, w := range s.writes {
				if _, err := io.WriteString(c, w); err != nil {
					return
				}
			}
			if s.close {
				return
			}
			continue
		}
		body := "good " + req.URL.Query().Get("id")
		if req.URL.Path == "/health" {
			body = ""
		}
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	}
}

// TestMaliciousUpstreamNeverLeaksIntoAnotherClientsResponse runs, for each
// kind of misbehaving backend response and each of the two upstream
// transports (body-less requests on the gateway's own, requests with a
// body on net/http's), one client that gets the bad response and then
// other clients on other connections, which must each get exactly their
// own response.
func TestMaliciousUpstreamNeverLeaksIntoAnotherClientsResponse(t *testing.T) {
	noLeaks(t)
	scripts := upstreamScripts()
	addr := scriptedBackend(t, scripts)
	g := start(t, func(c *config.Config) {
		c.Proxy.ResponseHeaderTimeout = 2 * time.Second
		c.Proxy.Retries = 0
	}, addr)
	for i, s := range scripts {
		for _, withBody := range []bool{false, true} {
			if withBody && s.head {
				continue
			}
			kind := "without body"
			if withBody {
				kind = "with body"
			}
			t.Run(s.name+"/"+kind, func(t *testing.T) {
				method := "GET"
				if s.head {
					method = "HEAD"
				}
				first := requestLine(method, fmt.Sprintf("/evil/%d", i), withBody)
				got := oneExchange(t, g.proxyAddr(), method, first)
				if s.status != 0 && got.status != s.status {
					t.Errorf("the client of the bad response got %d, want %d", got.status, s.status)
				}
				for k := range 3 {
					id := fmt.Sprintf("%d-%s-%d", i, strings.ReplaceAll(kind, " ", ""), k)
					r := oneExchange(t, g.proxyAddr(), "GET", requestLine("GET", "/good?id="+id, withBody))
					if r.status != 200 || r.body != "good "+id {
						t.Fatalf("the next client (request %d) got %d %q, want 200 %q", k+1, r.status, r.body, "good "+id)
					}
				}
			})
		}
	}
	g.stillServes(t, "/good?id=x", "good x")
}

// requestLine renders a request that closes its client connection, with a
// small body or without one.
func requestLine(method, target string, withBody bool) string {
	if withBody {
		return method + " " + target + " HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 4\r\n\r\nbody"
	}
	return method + " " + target + " HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
}

type exchangeResult struct {
	status int
	body   string
}

// oneExchange sends raw on a new connection and reads one response to it;
// a response that ends abruptly is returned as far as it came.
func oneExchange(t *testing.T, addr, method, raw string) exchangeResult {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		return exchangeResult{}
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return exchangeResult{resp.StatusCode, string(b)}
}
