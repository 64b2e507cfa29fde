package h1

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// responseHeads are responses (heads and bodies) for the comparison with
// http.ReadResponse and fuzz seeds.
var responseHeads = []struct{ method, raw string }{
	{"GET", "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Type: text/plain\r\nDate: Thu, 26 Nov 2026 08:00:00 GMT\r\n\r\nbody"},
	{"GET", "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"},
	{"GET", "HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok"},
	{"GET", "HTTP/1.1 599 Custom Reason Here\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 1\r\n\r\nx"},
	{"GET", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc"},
	{"GET", "HTTP/1.1 200 OK\r\nConnection: keep-alive, Upgrade-Insecure\r\nContent-Length: 3\r\n\r\nabc"},
	{"GET", "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabc"},
	{"GET", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nPragma: no-cache\r\nContent-Length: 3\r\n\r\nabc"},
	{"HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"},
	{"HEAD", "HTTP/1.1 200 OK\r\n\r\n"},
	{"GET", "HTTP/1.1 204 No Content\r\n\r\n"},
	{"GET", "HTTP/1.1 304 Not Modified\r\nEtag: \"x\"\r\n\r\n"},
	{"GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"},
	{"GET", "HTTP/1.1 200 OK\r\n\r\nto the close"},
	{"GET", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
	{"GET", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"},
	{"GET", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"},
	{"GET", "HTTP/1.1 200 OK\r\nX-Tab:\ta\tb \r\nX-Empty:\r\nContent-Length: 0\r\n\r\n"},
	{"GET", "HTTP/1.1 200 OK\r\nBad Name: v\r\nContent-Length: 0\r\n\r\n"},
	{"GET", "HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n"},
	{"GET", "HTTP/1.1 20x OK\r\nContent-Length: 0\r\n\r\n"},
	{"GET", "HTTP/1.1 200 OK\r\nConnection: clo\u017fe\r\nContent-Length: 0\r\n\r\n"},
	{"GET", "HTTP/1.0 200 OK\r\nConnection: \u212aeep-alive\r\nContent-Length: 0\r\n\r\n"},
}

// checkResponseHead compares readResponseHead with http.ReadResponse on
// raw: whatever the fast parser accepts must read the same, body included.
func checkResponseHead(t *testing.T, method, raw string) bool {
	t.Helper()
	req := &http.Request{Method: method}
	fast, ok := readResponseHead(bufioFull(raw), req, nil)
	if !ok {
		return false
	}
	want, err := http.ReadResponse(bufioFull(raw), req)
	if err != nil {
		t.Fatalf("fast parser accepted %q, net/http rejects it: %v", raw, err)
	}
	gotBody, gotErr := io.ReadAll(fast.Body)
	wantBody, wantErr := io.ReadAll(want.Body)
	agree(t, method+" "+raw, []field{
		{"Status", fast.Status, want.Status},
		{"StatusCode", fast.StatusCode, want.StatusCode},
		{"Proto", fast.Proto, want.Proto},
		{"ProtoMinor", fast.ProtoMinor, want.ProtoMinor},
		{"Header", fast.Header, want.Header},
		{"ContentLength", fast.ContentLength, want.ContentLength},
		{"Close", fast.Close, want.Close},
		{"body", string(gotBody), string(wantBody)},
		{"body error", errors.Is(gotErr, io.ErrUnexpectedEOF), errors.Is(wantErr, io.ErrUnexpectedEOF)},
		{"no body", fast.Body == http.NoBody, want.Body == http.NoBody},
	})
	return true
}

// bufioFull returns a reader with all of raw buffered, as after a read
// that brought the whole response.
func bufioFull(raw string) *bufio.Reader {
	br := bufio.NewReaderSize(strings.NewReader(raw), 4096)
	br.Peek(min(len(raw), 4096))
	return br
}

func TestResponseHeadsParseAsNetHTTPDoes(t *testing.T) {
	accepted := 0
	for _, r := range responseHeads {
		if checkResponseHead(t, r.method, r.raw) {
			accepted++
		}
	}
	if accepted < 12 {
		t.Fatalf("the fast parser accepted only %d of %d responses", accepted, len(responseHeads))
	}
}

func FuzzResponseHead(f *testing.F) {
	for _, r := range responseHeads {
		f.Add(r.method == "HEAD", r.raw)
	}
	f.Fuzz(func(t *testing.T, head bool, raw string) {
		method := "GET"
		if head {
			method = "HEAD"
		}
		checkResponseHead(t, method, raw)
	})
}
