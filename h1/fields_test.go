package h1

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"
)

func TestConnectionTokensAreReadAsNetHTTPReadsThem(t *testing.T) {
	for _, tc := range []struct {
		name, value, token string
		want               bool
	}{
		{"a single token matches", "close", "close", true},
		{"tokens match without case", "Keep-Alive", "keep-alive", true},
		{"a token in a list matches", "keep-alive, Upgrade", "upgrade", true},
		{"spaces and tabs around a token are ignored", " \tupgrade\t ", "upgrade", true},
		{"an empty list holds nothing", "", "close", false},
		{"a token is not matched by a prefix", "closed", "close", false},
		{"a token is not matched inside another", "x-close-y", "close", false},
		{"a vertical tab is not white space", "upgrade\v", "upgrade", false},
		{"a long s is not an s", "clo\u017fe", "close", false},
		{"a Kelvin sign is not a k", "\u212aeep-alive", "keep-alive", false},
		{"empty elements are skipped", ",,close,", "close", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := hasToken([]byte(tc.value), tc.token)
			oracle := httpguts.HeaderValuesContainsToken([]string{tc.value}, tc.token)
			if got != tc.want || oracle != tc.want {
				t.Fatalf("hasToken(%q, %q) = %v, httpguts says %v, want %v", tc.value, tc.token, got, oracle, tc.want)
			}
		})
	}
}

func TestHeadStringSlicesTheHeadAndCopiesAnythingElse(t *testing.T) {
	head := []byte("GET /a HTTP/1.1\r\nX-One: first\r\n\r\n")
	hs := newHeadString(head)
	if got := hs.of(head[24:29]); got != "first" {
		t.Fatalf("a value from the head: %q", got)
	}
	other := []byte("elsewhere, first")
	if got := hs.of(other[11:]); got != "first" {
		t.Fatalf("a value from another buffer: %q", got)
	}
	if got := hs.of(other[:9]); got != "elsewhere" {
		t.Fatalf("a value from another buffer that fits no slice of the head: %q", got)
	}
}

// The strings of a head are slices of one copy: parsing more field lines
// costs no more allocations.
func TestParsedFieldsShareOneAllocationWhateverTheirNumber(t *testing.T) {
	allocs := func(fields string) float64 {
		head := []byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n" + fields + "\r\n")
		return testing.AllocsPerRun(100, func() {
			hs := newHeadString(head)
			if _, _, _, _, ok := parseResponseFields(head[17:], hs, nil); !ok {
				t.Fatal("not parsed")
			}
		})
	}
	few := allocs("X-A: 1\r\n")
	many := allocs("X-A: 1\r\nX-B: 2\r\nX-C: 3\r\nX-Custom-Name: 4\r\nServer: s\r\nVary: v\r\n")
	if many > few {
		t.Fatalf("%v allocations for 7 fields, %v for 2: each field line allocates", many, few)
	}
}

// TestCanonicalIntoIsCanonicalHeaderKey compares CanonicalInto with
// net/http on valid field names, as a string and as bytes.
func TestCanonicalIntoIsCanonicalHeaderKey(t *testing.T) {
	var buf [64]byte
	for _, name := range []string{"x", "X", "content-length", "CONTENT-LENGTH", "x-forwarded-for", "X-fORWARDED-fOR", "-", "a-", "-a", "a--b", "x_y", "a1-b2", "WWW-Authenticate", "te"} {
		want := http.CanonicalHeaderKey(name)
		if got := string(CanonicalInto(buf[:], name)); got != want {
			t.Errorf("CanonicalInto(%q) = %q, want %q", name, got, want)
		}
		if got := string(CanonicalInto(buf[:], []byte(name))); got != want {
			t.Errorf("CanonicalInto([]byte(%q)) = %q, want %q", name, got, want)
		}
	}
}

// Repeated field names keep every value in order, whether they repeat
// among the first sixteen field lines, after them, or across.
func TestRepeatedFieldsKeepEveryValueInOrder(t *testing.T) {
	var b strings.Builder
	b.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n")
	for i := range 24 {
		switch i % 6 {
		case 0:
			fmt.Fprintf(&b, "X-A: a%d\r\n", i)
		case 3:
			fmt.Fprintf(&b, "x-b: b%d\r\n", i)
		default:
			fmt.Fprintf(&b, "X-F%d: %d\r\n", i, i)
		}
	}
	fmt.Fprintf(&b, "X-Late: 1\r\nX-Late: 2\r\n\r\n")
	if !checkResponseHead(t, "GET", b.String()) {
		t.Fatal("not parsed by the fast parser")
	}
}
