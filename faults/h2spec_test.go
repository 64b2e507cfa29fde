package faults

import (
	"github.com/switchyard-gw/switchyard/internal/testenv"

	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/internal/testpki"
)

// h2specExceptions are the h2spec cases the gateway's listeners fail, by
// listener ("h2c" or "tls") and case id, each with the reason. All are the
// behaviour of net/http's HTTP/2 server, which both listeners use as it
// is; none lets a malformed request reach an upstream. A case listed here
// that passes fails the test, so the list cannot go stale.
var h2specExceptions = map[string]map[string]string{
	"h2c": {
		"http2/3.5/2": "invalid connection preface: the cleartext port speaks HTTP/1.1 as well as " +
			"h2c with prior knowledge, so bytes that are not the HTTP/2 preface are read as an " +
			"HTTP/1.1 request and answered 400 in HTTP/1.1 rather than by closing the connection",
	},
	"*": {
		"http2/4.2/3": "HEADERS frame larger than SETTINGS_MAX_FRAME_SIZE: the case assumes the " +
			"default 16 KiB, but the listener advertises net/http's 1 MiB, so h2spec's ~20 KiB " +
			"frame is within the advertised limit and is served",
		"http2/6.5.3/1": "several SETTINGS_INITIAL_WINDOW_SIZE values in one SETTINGS frame: " +
			"net/http treats duplicate settings as a PROTOCOL_ERROR and closes the connection " +
			"instead of applying them in order",
		"http2/8.1.2.2/1": "connection-specific header field: net/http answers 400 Bad Request " +
			"(\"request header \\\"Connection\\\" is not valid in HTTP/2\") instead of resetting the " +
			"stream; the request reaches neither the gateway nor an upstream",
		"http2/8.1.2.2/2": "TE other than \"trailers\": net/http answers 400 Bad Request instead of " +
			"resetting the stream; the request reaches neither the gateway nor an upstream",
	},
}

// h2specExcepted reports whether case id may fail on the listener mode.
func h2specExcepted(mode, id string) bool {
	_, ok := h2specExceptions[mode][id]
	_, all := h2specExceptions["*"][id]
	return ok || all
}

// TestH2Spec runs h2spec (github.com/summerwind/h2spec, from the tools
// cache: scripts/tools.sh h2spec) against the h2c and the TLS listener.
func TestH2Spec(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	bin := testenv.Tool(t, "h2spec")
	pki := testpki.New(t)
	be := newHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	})
	for _, mode := range []string{"h2c", "tls"} {
		t.Run(mode, func(t *testing.T) {
			noLeaks(t)
			g := start(t, func(c *config.Config) {
				c.Server.H2C = mode == "h2c"
				if mode == "tls" {
					c.Server.TLSCertFile, c.Server.TLSKeyFile = pki.ServerCert, pki.ServerKey
				}
			}, be)
			host, port, _ := net.SplitHostPort(g.proxyAddr())
			report := filepath.Join(t.TempDir(), "h2spec.xml")
			args := []string{"-h", host, "-p", port, "-o", "2", "-j", report}
			if mode == "tls" {
				args = append(args, "-t", "-k")
			}
			out, _ := exec.Command(bin, args...).CombinedOutput() // failures are read from the report
			failed, total := h2specFailures(t, report)
			if total == 0 {
				t.Fatalf("h2spec ran no case:\n%s", testenv.Tail(string(out), 3000))
			}
			var unexpected []string
			for _, id := range failed {
				if !h2specExcepted(mode, id) {
					unexpected = append(unexpected, id)
				}
			}
			for _, m := range []string{mode, "*"} {
				for id := range h2specExceptions[m] {
					if !contains(failed, id) {
						t.Errorf("h2spec %s passes now: remove it from h2specExceptions", id)
					}
				}
			}
			if len(unexpected) > 0 {
				t.Errorf("h2spec cases failed: %s\n%s", strings.Join(unexpected, ", "), testenv.Tail(string(out), 6000))
			}
			t.Logf("h2spec %s: %d cases, %d known exceptions", mode, total, len(failed)-len(unexpected))
		})
	}
}

// h2specFailures reads h2spec's JUnit report: the failed cases' ids
// ("http2/6.5.3/2": section and case number, as h2spec's command line
// names them) and the number of cases.
func h2specFailures(t *testing.T, path string) ([]string, int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("h2spec report: %v", err)
	}
	var r struct {
		Suites []struct {
			Package string `xml:"package,attr"`
			Cases   []struct {
				Package string    `xml:"package,attr"`
				Name    string    `xml:"name,attr"`
				Failure *struct{} `xml:"failure"`
				Error   *struct{} `xml:"error"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b, &r); err != nil {
		t.Fatalf("h2spec report: %v", err)
	}
	var failed []string
	total := 0
	for _, s := range r.Suites {
		for i, c := range s.Cases {
			total++
			if c.Failure != nil || c.Error != nil {
				failed = append(failed, fmt.Sprintf("%s/%d", c.Package, i+1))
			}
		}
	}
	sort.Strings(failed)
	return failed, total
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
