package faults

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/config"
)

// smuggle is a request with both Content-Length and Transfer-Encoding whose
// chunked body ends at once, followed by a hidden request: the classic
// vector the strict framing check exists to stop.
const smuggle = "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /hidden HTTP/1.1\r\nHost: a\r\n\r\n"

func noHidden(t *testing.T, rb *recordingWire, ip string) {
	t.Helper()
	for _, r := range rb.requestsFrom(ip) {
		if strings.Contains(r.path, "hidden") {
			t.Fatalf("a hidden request reached the backend: %v", rb.requestsFrom(ip))
		}
	}
}

// TestStrictFramingCannotBeSwitchedOffByTheClient: the framing check holds
// for the whole connection and every byte net/http reads, whatever the
// client said before.
func TestStrictFramingCannotBeSwitchedOffByTheClient(t *testing.T) {
	noLeaks(t)
	rb := newRecordingWire(t)
	g := start(t, func(c *config.Config) {
		c.Server.IdleTimeout = 500 * time.Millisecond
		c.Server.MaxHeaderBytes = 1 << 20 // the default, named: the limit the check must reach
	}, rb.addr())
	pad := "X-Pad: " + strings.Repeat("p", 1<<20-1000) + "\r\n"
	cases := []struct{ name, raw string }{
		{"an upgrade request answered without 101", "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n" + smuggle},
		{"two Upgrade headers read differently", "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n" + smuggle},
		{"a head over 1 MiB but within MaxHeaderBytes + 4096", strings.Replace(smuggle, "Host: a\r\n", "Host: a\r\n"+pad+"X-Pad2: "+strings.Repeat("q", 2000)+"\r\n", 1)},
		{"HTTP/2 preface with h2c off", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + smuggle},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ip := clientIP(1000 + i)
			got, err := sendFrom(ip, g.proxyAddr(), []byte(c.raw), 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			noHidden(t, rb, ip)
			for _, r := range rb.requestsFrom(ip) {
				if r.method == "POST" {
					t.Errorf("the request with both Content-Length and Transfer-Encoding reached the backend as %v", r)
				}
			}
			if !strings.Contains(string(got), " 400 ") && !strings.Contains(string(got), " 431 ") && !strings.Contains(string(got), " 505 ") {
				t.Errorf("no 400 for the ambiguous request; the client got %q", head(got))
			}
		})
	}
	g.stillServes(t, "/", "tok-")
}

func head(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}

// TestRequestTargetsOtherThanOriginFormGet400: what is forwarded is always
// the normalised origin-form path the request was routed by.
func TestRequestTargetsOtherThanOriginFormGet400(t *testing.T) {
	noLeaks(t)
	rb := newRecordingWire(t)
	g := start(t, nil, rb.addr())
	for i, target := range []string{"http:admin/secret", "x:../../admin", "example.com:80", "admin", "*", "mailto:a@b"} {
		ip := clientIP(2000 + i)
		got, err := sendFrom(ip, g.proxyAddr(), []byte("GET "+target+" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(got), "HTTP/1.1 400 ") {
			t.Errorf("GET %s: got %q, want 400", target, head(got))
		}
		if seen := rb.requestsFrom(ip); len(seen) > 0 {
			t.Errorf("GET %s reached the backend as %v", target, seen)
		}
	}
	ip := clientIP(2100)
	if _, err := sendFrom(ip, g.proxyAddr(), []byte("GET http://a/x/../y HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if seen := rb.requestsFrom(ip); len(seen) != 1 || seen[0].path != "/y" {
		t.Errorf("absolute-form GET http://a/x/../y reached the backend as %v, want one GET /y", seen)
	}
}

// TestSmallFramingDivergencesAreClosed: the HTTP/2 preface without h2c, an
// HTTP/0.9 request line, and HTTP/1.0 with a chunked body.
func TestSmallFramingDivergencesAreClosed(t *testing.T) {
	noLeaks(t)
	rb := newRecordingWire(t)
	g := start(t, func(c *config.Config) {
		c.Server.ReadHeaderTimeout = 30 * time.Second // far longer than the client waits below
		c.Server.IdleTimeout = 30 * time.Second
	}, rb.addr())

	t.Run("HTTP/2 preface with h2c off", func(t *testing.T) {
		ip := clientIP(3000)
		got, err := sendFrom(ip, g.proxyAddr(), []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(got), "HTTP/1.1 400 ") && !strings.HasPrefix(string(got), "HTTP/1.1 505 ") {
			t.Errorf("got %q, want 400 or 505", head(got))
		}
		if seen := rb.requestsFrom(ip); len(seen) > 0 {
			t.Errorf("the preface reached the backend as %v", seen)
		}
	})
	t.Run("HTTP/0.9 request line", func(t *testing.T) {
		c, err := net.Dial("tcp", g.proxyAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// The answer must not wait for read_header_timeout (30 s).
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET /\r\n")
		buf := make([]byte, 64)
		n, err := io.ReadAtLeast(c, buf, 12)
		if err != nil || !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 400 ") {
			t.Fatalf("got %q (%v), want 400 at once", buf[:n], err)
		}
	})
	t.Run("HTTP/1.0 with Transfer-Encoding chunked", func(t *testing.T) {
		ip := clientIP(3001)
		raw := "POST /p HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n" +
			"5\r\nhello\r\n0\r\n\r\n"
		got, err := sendFrom(ip, g.proxyAddr(), []byte(raw), 5*time.Second)
		if err != nil {
			t.Fatalf("%v; got %q", err, head(got))
		}
		if !strings.HasPrefix(string(got), "HTTP/1.1 400 ") {
			t.Errorf("got %q, want 400 and the connection closed", head(got))
		}
		if n := strings.Count(string(got), "HTTP/1.1 "); n != 1 {
			t.Errorf("got %d responses, want one: %q", n, head(got))
		}
		if seen := rb.requestsFrom(ip); len(seen) > 0 {
			t.Errorf("reached the backend as %v", seen)
		}
	})
	g.stillServes(t, "/", "tok-")
}

// TestUpgradedConnectionIsATunnelOnceThe101IsSent: after a real 101 the
// bytes are the upgraded protocol's, passed on untouched even when they
// would be refused as HTTP/1.
func TestUpgradedConnectionIsATunnelOnceThe101IsSent(t *testing.T) {
	noLeaks(t)
	echo := newRawBackend(t, func(c net.Conn, req *http.Request) {
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		io.Copy(c, c)
	})
	g := start(t, nil, echo.addr())
	conn, err := net.Dial("tcp", g.proxyAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	io.WriteString(conn, smuggle)
	got := make([]byte, len(smuggle))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != smuggle {
		t.Fatalf("the tunnel gave back %q (%v), want the bytes sent", got, err)
	}
}
