package gateway

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestReplayGivesANewStreamTheBodyFromTheStart(t *testing.T) {
	req, _ := http.NewRequest(http.MethodPost, "http://x/", io.NopCloser(strings.NewReader("hello, upstream")))
	withReplay(req)
	first, _ := io.ReadAll(req.Body)
	again, err := req.GetBody()
	if err != nil {
		t.Fatal(err)
	}
	second, _ := io.ReadAll(again)
	if string(first) != "hello, upstream" || string(second) != string(first) {
		t.Fatalf("first %q, second %q", first, second)
	}
}

func TestReplayRefusesABodyLongerThanTheLimit(t *testing.T) {
	body := bytes.Repeat([]byte("x"), replayLimit+1)
	req, _ := http.NewRequest(http.MethodPost, "http://x/", io.NopCloser(bytes.NewReader(body)))
	withReplay(req)
	if got, _ := io.ReadAll(req.Body); len(got) != len(body) {
		t.Fatalf("the first reader got %d bytes, want all %d", len(got), len(body))
	}
	if _, err := req.GetBody(); !errors.Is(err, errNoReplay) {
		t.Fatalf("GetBody after %d bytes: %v, want errNoReplay", len(body), err)
	}
}

// The abandoned stream's reader blocks in the client's body; the new
// stream's reader replays what was read without waiting for it, then gets
// the next bytes even though the old reader is the one that read them.
func TestReplayDoesNotWaitForAnAbandonedReader(t *testing.T) {
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPost, "http://x/", pr)
	withReplay(req)
	old := req.Body
	go pw.Write([]byte("first"))
	buf := make([]byte, 64)
	if n, _ := old.Read(buf); string(buf[:n]) != "first" {
		t.Fatalf("old reader got %q", buf[:n])
	}
	oldGot := make(chan string)
	go func() { n, _ := old.Read(buf); oldGot <- string(buf[:n]) }() // blocks: no data yet

	next, err := req.GetBody()
	if err != nil {
		t.Fatal(err)
	}
	nbuf := make([]byte, 64)
	if n, _ := next.Read(nbuf); string(nbuf[:n]) != "first" {
		t.Fatalf("new reader replayed %q", nbuf[:n])
	}
	newGot := make(chan string)
	go func() { n, _ := next.Read(nbuf); newGot <- string(nbuf[:n]) }()
	pw.Write([]byte("second"))
	if got := <-oldGot; got != "second" {
		t.Fatalf("old reader got %q", got)
	}
	if got := <-newGot; got != "second" {
		t.Fatalf("new reader got %q, want the bytes the old one read", got)
	}
	pw.Close()
}
