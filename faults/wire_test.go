package faults

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Helpers for the wire tests: a backend that records every request it
// parses with net/http's own reader, clients that dial from distinct
// loopback addresses (so the backend can tell whose request it got by
// X-Forwarded-For), and net/http's request reader as the oracle of what a
// client's bytes say.

// wireRequest is one request as a parser saw it.
type wireRequest struct {
	method, path string
	body         string
	token        string // the backend's answer, unique per request
}

func (r wireRequest) String() string {
	return fmt.Sprintf("%s %s body=%q", r.method, r.path, r.body)
}

// recordingWire is a raw TCP backend that parses what it receives with
// http.ReadRequest, records each request under the client address the
// gateway put in X-Forwarded-For, and answers each with a unique token in
// a header and in the body. Bytes that http.ReadRequest refuses are
// recorded too: the gateway must never forward them.
type recordingWire struct {
	srv     *tcpServer
	mu      sync.Mutex
	seen    map[string][]wireRequest // by X-Forwarded-For
	refused []string
	n       int
}

func newRecordingWire(t *testing.T) *recordingWire {
	t.Helper()
	b := &recordingWire{seen: map[string][]wireRequest{}}
	b.srv = startTCPServer(t, b.serve)
	return b
}

func (b *recordingWire) addr() string { return b.srv.addr() }

func (b *recordingWire) serve(c net.Conn) {
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			if !isEOFOrClosed(err) {
				b.refuse("request: " + err.Error())
			}
			return
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			// A body cut short is a client that stopped sending (the
			// gateway aborts the stream); anything else is bad framing.
			if !isEOFOrClosed(err) {
				b.refuse(fmt.Sprintf("body of %s %s: %v", req.Method, req.URL, err))
			}
			return
		}
		if req.URL.Path == "/health" && req.Header.Get("X-Forwarded-For") == "" {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
			continue
		}
		b.mu.Lock()
		b.n++
		tok := "tok-" + strconv.Itoa(b.n) + "-"
		from := req.Header.Get("X-Forwarded-For")
		b.seen[from] = append(b.seen[from], wireRequest{method: req.Method, path: req.URL.Path, body: string(body), token: tok})
		b.mu.Unlock()
		resp := "HTTP/1.1 200 OK\r\nX-Token: " + tok + "\r\nContent-Length: " + strconv.Itoa(len(tok)) + "\r\n\r\n"
		if req.Method != http.MethodHead {
			resp += tok
		}
		if _, err := io.WriteString(c, resp); err != nil {
			return
		}
	}
}

func (b *recordingWire) refuse(what string) {
	b.mu.Lock()
	b.refused = append(b.refused, what)
	b.mu.Unlock()
}

func (b *recordingWire) requestsFrom(ip string) []wireRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]wireRequest(nil), b.seen[ip]...)
}

// tokensBut returns every token issued to clients other than ip.
func (b *recordingWire) tokensBut(ip string) map[string]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]string{}
	for from, reqs := range b.seen {
		if from == ip {
			continue
		}
		for _, r := range reqs {
			out[r.token] = from
		}
	}
	return out
}

func isEOFOrClosed(err error) bool {
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		(errors.As(err, &ne) && !ne.Timeout()) || strings.Contains(err.Error(), "connection reset")
}

// oracle returns the requests net/http's reader finds in raw, in order,
// up to the first it refuses: what a gateway built on it may forward at
// most.
func oracle(raw []byte) []wireRequest {
	br := bufio.NewReader(bytes.NewReader(raw))
	var out []wireRequest
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return out
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return out
		}
		out = append(out, wireRequest{method: req.Method, path: cleanPath(req.URL.Path), body: string(body)})
	}
}

// cleanPath is the normalisation the gateway promises to forward.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

// clientIP returns the n-th distinct loopback source address (127.77.x.y).
func clientIP(n int) string {
	return fmt.Sprintf("127.77.%d.%d", n/250, n%250+2)
}

// sendFrom writes raw to addr from the source address ip and returns every
// byte the gateway sends back until it closes the connection (or wait
// passes).
func sendFrom(ip, addr string, raw []byte, wait time.Duration) ([]byte, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(wait))
	if _, err := c.Write(raw); err != nil {
		return nil, err
	}
	got, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return got, fmt.Errorf("the gateway kept the connection open for %s", wait)
	}
	return got, nil
}

var tokenRE = regexp.MustCompile(`tok-[0-9]+-`)

// unescape decodes the corpus's backslash escapes (\r \n \t \\ \xHH).
func unescape(s string) ([]byte, error) {
	var out []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			out = append(out, s[i])
			continue
		}
		if i+1 >= len(s) {
			return nil, fmt.Errorf("trailing backslash")
		}
		i++
		switch s[i] {
		case 'r':
			out = append(out, '\r')
		case 'n':
			out = append(out, '\n')
		case 't':
			out = append(out, '\t')
		case '\\':
			out = append(out, '\\')
		case 'x':
			if i+2 >= len(s) {
				return nil, fmt.Errorf("short \\x escape")
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return nil, fmt.Errorf("bad \\x escape %q", s[i+1:i+3])
			}
			out = append(out, byte(v))
			i += 2
		default:
			return nil, fmt.Errorf("unknown escape \\%c", s[i])
		}
	}
	return out, nil
}
