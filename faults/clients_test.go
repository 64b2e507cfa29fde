package faults

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/internal/testenv"
)

// recordingBackend records every request line it serves.
type recordingBackend struct {
	mu   sync.Mutex
	seen []string
	addr string
}

func newRecordingBackend(t *testing.T) *recordingBackend {
	rb := &recordingBackend{}
	rb.addr = newHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		io.Copy(io.Discard, r.Body)
		rb.mu.Lock()
		rb.seen = append(rb.seen, r.Method+" "+r.URL.RequestURI()+" upgrade="+r.Header.Get("Upgrade")+" settings="+r.Header.Get("HTTP2-Settings"))
		rb.mu.Unlock()
		io.WriteString(w, "ok")
	})
	return rb
}

func (rb *recordingBackend) requests() []string {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	return append([]string(nil), rb.seen...)
}

func TestSmugglingProbesGet400AndNoHiddenRequestReachesTheBackend(t *testing.T) {
	noLeaks(t)
	rb := newRecordingBackend(t)
	g := start(t, nil, rb.addr)
	const hidden = "GET /hidden HTTP/1.1\r\nHost: x\r\n\r\n"
	probes := map[string]string{
		"CL and TE":           "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + hidden,
		"two CLs":             "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 39\r\n\r\nabcd" + hidden,
		"TE chunked, chunked": "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n" + hidden,
		"bare LF chunk size":  "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\nabcd\r\n0\r\n\r\n" + hidden,
		"space before colon":  "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length : 4\r\n\r\nabcd" + hidden,
	}
	for name, raw := range probes {
		codes := testenv.RawExchange(t, g.proxyAddr(), raw)
		if len(codes) != 1 || codes[0] != http.StatusBadRequest {
			t.Errorf("%s: responses %v, want one 400", name, codes)
		}
	}
	for _, r := range rb.requests() {
		if strings.Contains(r, "/hidden") {
			t.Fatalf("a hidden request reached the backend: %v", rb.requests())
		}
	}
	g.stillServes(t, "/", "ok")
}

func TestPathTricksCannotReachARouteTheNormalisedPathDoesNotMatch(t *testing.T) {
	noLeaks(t)
	public, adminSvc := newRecordingBackend(t), newRecordingBackend(t)
	g := start(t, func(c *config.Config) {
		c.Backends = nil
		c.Services = []config.Service{
			{Name: "public", Instances: []config.Instance{{Address: public.addr}}},
			{Name: "admin", Instances: []config.Instance{{Address: adminSvc.addr}}},
		}
		c.Routes = []config.Route{{PathPrefix: "/public", Service: "public"}, {PathPrefix: "/admin", Service: "admin"}}
	})
	for _, p := range []string{"/public/../admin", "/public/%2e%2e/admin", "//admin", "/admin%2F..", "/public/./../admin/x"} {
		testenv.RawExchange(t, g.proxyAddr(), "GET "+p+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	}
	// Whatever reached a backend must have been routed by the path it got.
	for _, r := range public.requests() {
		if !strings.HasPrefix(r, "GET /public") {
			t.Errorf("public backend got %q", r)
		}
	}
	for _, r := range adminSvc.requests() {
		if !strings.HasPrefix(r, "GET /admin") {
			t.Errorf("admin backend got %q", r)
		}
	}
	g.stillServes(t, "/public/x", "ok")
}

func TestH2CUpgradeIsNotForwarded(t *testing.T) {
	noLeaks(t)
	rb := newRecordingBackend(t)
	g := start(t, nil, rb.addr)
	codes := testenv.RawExchange(t, g.proxyAddr(), "GET /up HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"+
		"GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if fmt.Sprint(codes) != "[200 200]" {
		t.Fatalf("codes %v, want the request answered as HTTP/1.1 and the next one too", codes)
	}
	got := rb.requests()
	if len(got) != 2 || got[0] != "GET /up upgrade= settings=" {
		t.Fatalf("backend saw %q, want the request without Upgrade and HTTP2-Settings", got)
	}
}

func TestOversizedHeadersGet431AndOversizedBodies413(t *testing.T) {
	noLeaks(t)
	rb := newRecordingBackend(t)
	g := start(t, func(c *config.Config) {
		c.Server.MaxHeaderBytes = 8 << 10
		c.Proxy.MaxBodyBytes = 1000
	}, rb.addr)
	big := strings.Repeat("a", 64<<10)
	codes := testenv.RawExchange(t, g.proxyAddr(), "GET / HTTP/1.1\r\nHost: x\r\nX-Big: "+big+"\r\n\r\n")
	if len(codes) != 1 || codes[0] != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("oversized headers: %v, want 431", codes)
	}
	resp, err := g.client.Post(g.url+"/", "text/plain", strings.NewReader(strings.Repeat("b", 1001)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("body over the limit with Content-Length: %d, want 413", resp.StatusCode)
	}
	// Chunked, so the size is only known while streaming.
	resp, err = g.client.Post(g.url+"/", "text/plain", io.MultiReader(strings.NewReader(strings.Repeat("c", 1001))))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked body over the limit: %d, want 413", resp.StatusCode)
	}
	resp, err = g.client.Post(g.url+"/", "text/plain", strings.NewReader(strings.Repeat("d", 1000)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("body exactly at the limit: %d, want 200", resp.StatusCode)
	}
}

func TestSlowClientsAreCutWhileNormalClientsAreServed(t *testing.T) {
	noLeaks(t)
	rb := newRecordingBackend(t)
	g := start(t, func(c *config.Config) {
		c.Server.ReadHeaderTimeout = 300 * time.Millisecond
		c.Server.ReadTimeout = 300 * time.Millisecond
	}, rb.addr)

	// Slowloris: many connections trickling header bytes.
	const slow = 50
	var cut atomic.Int32
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range slow {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", g.proxyAddr())
			if err != nil {
				return
			}
			defer c.Close()
			header := "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("s", 100)
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for i := 0; i < len(header); i++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if _, err := c.Write([]byte{header[i]}); err != nil {
					cut.Add(1)
					return
				}
				c.SetReadDeadline(time.Now().Add(time.Millisecond))
				if _, err := c.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
					cut.Add(1) // closed by the server
					return
				}
			}
		}()
	}
	// Meanwhile normal clients keep getting answers.
	for i := range 20 {
		if code, _ := g.get(t, "/"); code != 200 {
			t.Fatalf("normal request %d during slowloris: %d", i, code)
		}
	}
	testenv.WaitFor(t, 5*time.Second, "every slow connection cut", func() bool { return cut.Load() == slow })
	close(stop)
	wg.Wait()

	// A slow request body gets 408 once the body deadline passes.
	c, err := net.Dial("tcp", g.proxyAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nfirst bytes only")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("slow body: %v, want a 408 response", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("slow body: %d, want 408", resp.StatusCode)
	}
	g.stillServes(t, "/", "ok")
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func TestHTTP2RapidResetDoesNotGrowGoroutines(t *testing.T) {
	for _, mode := range []string{"h2c", "tls"} {
		t.Run(mode, func(t *testing.T) {
			noLeaks(t)
			release := make(chan struct{})
			slowAddr := newHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/health" {
					return
				}
				select {
				case <-release:
				case <-r.Context().Done():
				}
			})
			defer close(release)
			var certFile, keyFile string
			if mode == "tls" {
				certFile, keyFile = selfSignedCert(t)
			}
			g := start(t, func(c *config.Config) {
				c.Server.H2C = mode == "h2c"
				c.Server.TLSCertFile, c.Server.TLSKeyFile = certFile, keyFile
			}, slowAddr)

			var conn net.Conn
			var err error
			if mode == "tls" {
				conn, err = tls.Dial("tcp", g.proxyAddr(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
				if err == nil && conn.(*tls.Conn).ConnectionState().NegotiatedProtocol != "h2" {
					t.Fatal("TLS listener did not negotiate h2")
				}
			} else {
				conn, err = net.Dial("tcp", g.proxyAddr())
			}
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			before, peak := rapidReset(t, conn, 2000)
			if growth := peak - before; growth > 500 {
				t.Fatalf("goroutines grew by %d while 2000 streams were opened and reset", growth)
			}
			conn.Close()
			t.Logf("goroutines: %d before, peak %d during 2000 rapid resets", before, peak)
			if mode == "h2c" {
				g.stillServes(t, "/health", "")
			}
		})
	}
}

// rapidReset opens and immediately resets streams on an HTTP/2 connection
// and returns the goroutine count before and the peak during.
func rapidReset(t *testing.T, conn net.Conn, streams uint32) (before, peak int) {
	io.WriteString(conn, http2.ClientPreface)
	fr := http2.NewFramer(conn, conn)
	fr.WriteSettings()
	go func() { // drain server frames so it never blocks on writes
		for {
			if _, err := fr.ReadFrame(); err != nil {
				return
			}
		}
	}()
	var hb strings.Builder
	enc := hpack.NewEncoder(&hbWriter{&hb})
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/rr"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	block := []byte(hb.String())
	before = runtime.NumGoroutine()
	peak = before
	for i := uint32(0); i < streams; i++ {
		id := 2*i + 1
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}); err != nil {
			break // the server may close a connection that abuses resets: fine
		}
		if err := fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
			break
		}
		if i%100 == 0 {
			peak = max(peak, runtime.NumGoroutine())
		}
	}
	return before, peak
}

// selfSignedCert writes a throwaway certificate for 127.0.0.1.
func selfSignedCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "switchyard test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

type hbWriter struct{ b *strings.Builder }

func (w *hbWriter) Write(p []byte) (int, error) { return w.b.Write(p) }
