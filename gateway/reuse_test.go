package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// endFunc is a func used as a RequestEnd.
type endFunc func(status int)

func (f endFunc) End(status int) { f(status) }

// The fast core's outgoing request is whole until End returns and cleared
// once the request has ended, so that a hook that kept it, against the
// Hooks contract, finds nothing of a later request in it.
func TestFastCoreOutgoingRequestClearedAfterEnd(t *testing.T) {
	be := backend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	var kept *http.Request
	var atEnd string
	hooks := Hooks{
		Request: func(r *http.Request, route, service string) (context.Context, RequestEnd) {
			return r.Context(), endFunc(func(int) {
				atEnd = kept.Method + " " + kept.URL.Path + " " + headerValue(kept.Header, "X-Client")
			})
		},
		Attempt: func(req *http.Request, a Attempt) AttemptEnd {
			kept = req
			return nil
		},
	}
	g, _ := setup(t, Options{Hooks: hooks}, addr(be))
	for i := range 3 {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/p"+strconv.Itoa(i), nil)
		req.Header.Set("X-Client", strconv.Itoa(i))
		g.ServeHTTP(rec, req)
		if rec.Code != 200 || rec.Body.String() != "ok" {
			t.Fatalf("got %d %q", rec.Code, rec.Body.String())
		}
		if want := fmt.Sprintf("GET /p%d %d", i, i); atEnd != want {
			t.Fatalf("at End the outgoing request was %q, want %q", atEnd, want)
		}
		if kept.Method != "" || kept.URL != nil || kept.Header != nil || kept.Context() != context.Background() {
			t.Fatalf("outgoing request not cleared after the request ended: %+v", kept)
		}
	}
}

// Concurrent clients through the fast core, each with its own fields and
// number of fields, and a hook that adds one: the backend sees every
// request's fields and no other's.
func TestFastCoreConcurrentClientsHeadersDoNotBleed(t *testing.T) {
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("c")
		n, _ := strconv.Atoi(id)
		got := 0
		for k, vv := range r.Header {
			if !strings.HasPrefix(k, "X-F-") {
				continue
			}
			got++
			if !strings.HasPrefix(k, "X-F-"+id+"-") || len(vv) != 1 || vv[0] != k+"="+id {
				t.Errorf("client %s: backend got %s: %q", id, k, vv)
			}
		}
		if got != n+1 || r.Header.Get("X-Client") != id || r.Header.Get("X-Hook") != id {
			t.Errorf("client %s: %d own fields (want %d), X-Client %q, X-Hook %q", id, got, n+1, r.Header.Get("X-Client"), r.Header.Get("X-Hook"))
		}
		io.WriteString(w, id)
	})
	hooks := Hooks{Attempt: func(req *http.Request, a Attempt) AttemptEnd {
		req.Header["X-Hook"] = []string{headerValue(req.Header, "X-Client")}
		return nil
	}}
	_, front := setup(t, Options{Hooks: hooks}, addr(be))
	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var wg sync.WaitGroup
	for c := range 6 {
		wg.Go(func() {
			id := strconv.Itoa(c)
			for range 40 {
				req, _ := http.NewRequest("GET", front.URL+"/x?c="+id, nil)
				req.Header.Set("X-Client", id)
				for j := range c + 1 {
					k := fmt.Sprintf("X-F-%s-%d", id, j)
					req.Header.Set(k, k+"="+id)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(b) != id {
					t.Errorf("client %s: got %d %q", id, resp.StatusCode, b)
					return
				}
			}
		})
	}
	wg.Wait()
}

// releaseEnd is a RequestEnd that counts its End calls and its releases.
type releaseEnd struct{ ends, release int }

func (e *releaseEnd) End(int) { e.ends++ }

// The Release hook is called with the request's RequestEnd after End when
// the fast core served the request over the gateway's own transport to
// instances at IP addresses, and only then: not through ReverseProxy, not
// over a transport given in Options (which may keep the request), not
// after a dial to a host name (whose lookup may outlive the dial).
func TestReleaseOnlyWhenNothingHoldsTheRequest(t *testing.T) {
	be := backend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	_, port, _ := strings.Cut(addr(be), ":")
	for _, tc := range []struct {
		name      string
		addr      string
		transport http.RoundTripper
		body      bool
		want      int
	}{
		{"fast core, IP address", addr(be), nil, false, 1},
		{"ReverseProxy (a body)", addr(be), nil, true, 0},
		{"transport given", addr(be), http.DefaultTransport, false, 0},
		{"host name", "localhost:" + port, nil, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &releaseEnd{}
			hooks := Hooks{
				Request: func(r *http.Request, route, service string) (context.Context, RequestEnd) {
					return r.Context(), e
				},
				Release: func(end RequestEnd) {
					if end != RequestEnd(e) || e.ends != 1 {
						t.Errorf("Release of %v after %d End calls, want the request's after 1", end, e.ends)
					}
					e.release++
				},
			}
			g, _ := setup(t, Options{Hooks: hooks, Transport: tc.transport}, tc.addr)
			var req *http.Request
			if tc.body {
				req = httptest.NewRequest("POST", "/p", strings.NewReader("body"))
			} else {
				req = httptest.NewRequest("GET", "/p", nil)
			}
			rec := httptest.NewRecorder()
			g.ServeHTTP(rec, req)
			if rec.Code != 200 {
				t.Fatalf("status %d", rec.Code)
			}
			if e.ends != 1 || e.release != tc.want {
				t.Errorf("End %d times, Release %d times; want 1 and %d", e.ends, e.release, tc.want)
			}
		})
	}
}
