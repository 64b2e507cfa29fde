package h1

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/internal/testenv"
)

// strictServer serves h behind StrictListener and records what it saw.
func strictServer(t *testing.T) (addr string, seen func() []string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []string
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, fmt.Sprintf("%s %s %q", r.Method, r.URL.Path, b))
		mu.Unlock()
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
		}
	})}
	go srv.Serve(StrictListener(ln, StrictOptions{}))
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), got...) }
}

func TestStrictFramingRejectsAmbiguousRequests(t *testing.T) {
	const hidden = "GET /hidden HTTP/1.1\r\nHost: x\r\n\r\n"
	cases := []struct {
		name, raw string
	}{
		{"Content-Length together with Transfer-Encoding", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + hidden},
		{"two different Content-Lengths", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd" + hidden},
		{"Transfer-Encoding chunked twice", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n" + hidden},
		{"a bare LF after a chunk size", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\nabcd\r\n0\r\n\r\n" + hidden},
		{"a space before the colon", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length : 4\r\n\r\nabcd" + hidden},
		{"a bare LF ending a header line", "POST / HTTP/1.1\r\nHost: x\nContent-Length: 4\r\n\r\nabcd" + hidden},
		{"an obsolete folded header", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n folded\r\n\r\nabcd" + hidden},
		{"chunk data not followed by CRLF", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcdXX0\r\n\r\n" + hidden},
		{"Transfer-Encoding in HTTP/1.0, which net/http ignores", "POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + hidden},
		{"the HTTP/2 preface without h2c", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + hidden},
		{"a chunk-size line longer than net/http reads", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + strings.Repeat("0", 5000) + "1\r\nx\r\n0\r\n\r\n" + hidden},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			addr, seen := strictServer(t)
			codes := testenv.RawExchange(t, addr, c.raw)
			if len(codes) != 1 || codes[0] != http.StatusBadRequest {
				t.Errorf("responses %v, want exactly one 400", codes)
			}
			for _, s := range seen() {
				if strings.Contains(s, "/hidden") {
					t.Errorf("the hidden request reached the handler: %v", seen())
				}
			}
		})
	}
}

func TestStrictFramingGoesOnAfterAnUpgradeThatWasNotGranted(t *testing.T) {
	addr, seen := strictServer(t) // answers 200, never 101
	codes := testenv.RawExchange(t, addr, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"+
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /hidden HTTP/1.1\r\nHost: x\r\n\r\n")
	if fmt.Sprint(codes) != "[200 400]" {
		t.Fatalf("codes %v, want the upgrade request answered and the ambiguous one refused", codes)
	}
	for _, s := range seen() {
		if strings.Contains(s, "/hidden") {
			t.Fatalf("the hidden request reached the handler: %v", seen())
		}
	}
}

func TestStrictFramingAcceptsWellFormedPipelines(t *testing.T) {
	addr, seen := strictServer(t)
	raw := "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
		"POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: v\r\n\r\n" +
		"\r\nGET /c HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" +
		"GET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	codes := testenv.RawExchange(t, addr, raw)
	if fmt.Sprint(codes) != "[200 200 200 200]" {
		t.Fatalf("codes %v, want four 200s", codes)
	}
	want := []string{`POST /a "hello"`, `POST /b "abcde"`, `GET /c ""`, `GET /d ""`}
	if got := seen(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("handler saw %v, want %v", got, want)
	}
}

func TestStrictFramingSurvivesByteAtATimeDelivery(t *testing.T) {
	addr, seen := strictServer(t)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw := "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	for i := range len(raw) {
		c.Write([]byte{raw[i]})
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.Copy(io.Discard, c)
	if got := fmt.Sprint(seen()); got != fmt.Sprint([]string{`POST /a "abc"`, `GET /b ""`}) {
		t.Fatalf("handler saw %v", got)
	}
}

// chunkConn replays data in reads of at most n bytes.
type chunkConn struct {
	net.Conn
	data []byte
	n    int
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), c.n, len(c.data))
	copy(p, c.data[:k])
	c.data = c.data[k:]
	return k, nil
}

// FuzzStrictFraming feeds arbitrary bytes, split arbitrarily, through the
// framing checker: it must never panic, and what it passes on is a prefix
// of the input followed by at most the poison bytes.
func FuzzStrictFraming(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 3)
	f.Add([]byte("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n"), 1)
	f.Add([]byte("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc"), 7)
	f.Fuzz(func(t *testing.T, data []byte, n int) {
		if n <= 0 || n > 1<<16 {
			n = 1
		}
		c := &strictConn{Conn: &chunkConn{data: append([]byte(nil), data...), n: n}}
		var out []byte
		buf := make([]byte, 512)
		for i := 0; i < 10*len(data)+10; i++ {
			k, err := c.Read(buf)
			out = append(out, buf[:k]...)
			if err != nil {
				break
			}
		}
		for _, poison := range []string{"", "\x00\r\n\r\n", "zz\r\n"} {
			if p := bytes.TrimSuffix(out, []byte(poison)); len(p) <= len(data) && bytes.Equal(p, data[:len(p)]) {
				return
			}
		}
		t.Fatalf("output %q is not a prefix of the input %q plus poison", out, data)
	})
}
