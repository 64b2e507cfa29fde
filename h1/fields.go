package h1

import (
	"bytes"
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// Header fields of a request or response head, parsed in place for the
// fast path (server_parse.go) and the upstream transport (response.go), with
// net/http's rules: what is not plainly valid is refused and left to it.

// headString is a head's bytes with one string copy of them: the strings
// parsed from the head (target, field values, uncommon field names) are
// slices of that one allocation instead of one allocation each.
type headString struct {
	b []byte
	s string
}

func newHeadString(b []byte) headString { return headString{b: b, s: string(b)} }

// of returns v, a subslice of the head's bytes, as a slice of the head's
// string. v's offset in the head follows from the capacities (v was cut
// from the head with two-index slicing); a v from elsewhere, which would
// not match there, is copied.
func (h headString) of(v []byte) string {
	off := cap(h.b) - cap(v)
	if off < 0 || off+len(v) > len(h.s) || h.s[off:off+len(v)] != string(v) {
		return string(v)
	}
	return h.s[off : off+len(v)]
}

// fields builds an http.Header whose values share one backing array, and
// whose strings are slices of the head's string.
type fields struct {
	h    http.Header
	vals []string
	head headString
	// keys[i] names vals[i], for the first values: a repeated name among
	// them is found by the header's length, without a lookup per field.
	keys [16]string
}

// newFields sizes the header for the field lines in rest, which ends with
// the head's blank line and is part of head. The values go in spare when
// they fit, so that a caller can allocate them with what it allocates
// anyway.
func newFields(rest []byte, head headString, spare []string) (fields, bool) {
	n := bytes.Count(rest, []byte("\n")) - 1
	if n < 0 {
		return fields{}, false
	}
	vals := spare[:0]
	if n > cap(spare) {
		vals = make([]string, 0, n)
	}
	return fields{h: make(http.Header, n), vals: vals, head: head}, true
}

func (f *fields) add(key string, value []byte) {
	i := len(f.vals)
	f.vals = append(f.vals, f.head.of(value))
	if i >= len(f.keys) {
		if vv, ok := f.h[key]; ok {
			f.h[key] = append(vv, f.vals[i])
		} else {
			f.h[key] = f.vals[i : i+1 : i+1]
		}
		return
	}
	f.keys[i] = key
	n := len(f.h)
	f.h[key] = f.vals[i : i+1 : i+1]
	if len(f.h) == n {
		// Repeated: the values are every one named key so far, in order.
		var vv []string
		for j := 0; j <= i; j++ {
			if f.keys[j] == key {
				vv = append(vv, f.vals[j])
			}
		}
		f.h[key] = vv
	}
}

// nextField splits the first field line off rest: its canonical name, its
// value without surrounding white space, and what follows. ok is false for
// a line net/http might read differently.
func (f *fields) next(rest []byte) (key string, value, next []byte, ok bool) {
	eol := bytes.IndexByte(rest, '\n')
	if eol < 1 || rest[eol-1] != '\r' {
		return "", nil, nil, false
	}
	line := rest[:eol-1]
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return "", nil, nil, false
	}
	name, value := line[:colon], trimOWS(line[colon+1:])
	if !validFieldName(name) || !validFieldValue(value) {
		return "", nil, nil, false
	}
	return canonicalKey(name, f.head), value, rest[eol+1:], true
}

// fixPragma adds "Cache-Control: no-cache" when the first Pragma is
// "no-cache" and no Cache-Control is set, as net/http does to every request
// and response it reads, whatever the protocol version.
func fixPragma(h http.Header) {
	if hp := h["Pragma"]; len(hp) > 0 && hp[0] == "no-cache" {
		if _, ok := h["Cache-Control"]; !ok {
			h["Cache-Control"] = []string{"no-cache"}
		}
	}
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func validFieldName(b []byte) bool {
	for _, c := range b {
		if !httpguts.IsTokenRune(rune(c)) {
			return false
		}
	}
	return len(b) > 0
}

// validFieldValue: visible ASCII, obs-text, space and tab; no CTLs.
func validFieldValue(b []byte) bool {
	for _, c := range b {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// hasCRLF reports whether v holds a CR or an LF: two byte searches, which
// cost less than strings.ContainsAny building a set for every value.
func hasCRLF(v string) bool {
	return strings.IndexByte(v, '\r') >= 0 || strings.IndexByte(v, '\n') >= 0
}

// hasToken reports whether the comma-separated list v holds tok, compared
// as ASCII without case, as httpguts.HeaderValuesContainsToken does for
// net/http: it is the fast path's and the framing guard's one reader of
// Connection tokens, and must read them as net/http will.
func hasToken(v []byte, tok string) bool {
	for len(v) > 0 {
		var t []byte
		t, v, _ = bytes.Cut(v, []byte(","))
		if tokenEqual(trimOWS(t), tok) {
			return true
		}
	}
	return false
}

// tokenEqual compares t with the lower-case ASCII token tok without case;
// a non-ASCII byte never matches (strings.EqualFold would fold U+017F
// "ſ" to "s" and U+212A "K" to "k", which net/http does not).
func tokenEqual(t []byte, tok string) bool {
	if len(t) != len(tok) {
		return false
	}
	for i, c := range t {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != tok[i] {
			return false
		}
	}
	return true
}

// parseLength parses a Content-Length value: decimal digits only.
func parseLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, d := range b {
		if d < '0' || d > '9' {
			return 0, false
		}
		n = n*10 + int64(d-'0')
	}
	return n, true
}

// CanonicalInto writes the canonical form of the field name into
// k[:len(name)] and returns that slice: each letter upper case at the start
// and after a '-', lower case elsewhere, as http.CanonicalHeaderKey writes
// a valid field name. k must hold len(name) bytes; validity is the
// caller's to check.
func CanonicalInto[T string | []byte](k []byte, name T) []byte {
	k = k[:len(name)]
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case upper && 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		case !upper && 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		k[i] = c
		upper = c == '-'
	}
	return k
}

// canonicalKey returns the canonical form of a header name; common names
// come from a table and cost no allocation.
func canonicalKey(name []byte, head headString) string {
	var buf [64]byte
	if len(name) > len(buf) {
		return http.CanonicalHeaderKey(string(name))
	}
	k := CanonicalInto(buf[:], name)
	if len(k) < len(commonKeys) {
		for _, s := range commonKeys[len(k)] {
			if s == string(k) {
				return s
			}
		}
	}
	if string(k) == string(name) {
		return head.of(name) // already canonical
	}
	return string(k)
}

// commonKeys are the common names by length: a few string comparisons
// find one, for less than a map's hashing.
var commonKeys = func() (m [32][]string) {
	for _, k := range []string{
		"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Accept-Ranges",
		"Authorization", "Cache-Control", "Connection", "Content-Length", "Content-Type",
		"Cookie", "Date", "Dnt", "Etag", "Expect", "Forwarded", "From", "Host",
		"If-Match", "If-Modified-Since", "If-None-Match", "If-Range", "If-Unmodified-Since",
		"Origin", "Pragma", "Priority", "Range", "Referer", "Sec-Ch-Ua", "Sec-Ch-Ua-Mobile",
		"Sec-Ch-Ua-Platform", "Sec-Fetch-Dest", "Sec-Fetch-Mode", "Sec-Fetch-Site",
		"Sec-Fetch-User", "Te", "Traceparent", "Tracestate", "Baggage", "Transfer-Encoding",
		"Upgrade", "Upgrade-Insecure-Requests", "User-Agent", "Via", "X-Forwarded-For",
		"X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip", "X-Request-Id",
	} {
		m[len(k)] = append(m[len(k)], k)
	}
	return m
}()
