package faults

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/config"
)

// corpusCase is one client connection's bytes and where they come from.
type corpusCase struct {
	name string // source and entry
	raw  []byte
}

// gardenCorpus is the public corpus of payloads from
// narfindustries/http-garden's TROPHIES.md, read from the shared corpora
// directory when present (never copied into the project).
const gardenCorpus = "../../../shared/corpora/http-garden-http1-payloads.tsv"

func gardenCases(t *testing.T) []corpusCase {
	path := os.Getenv("SWITCHYARD_GARDEN_TSV")
	if path == "" {
		path = gardenCorpus
	}
	f, err := os.Open(path)
	if err != nil {
		t.Logf("http-garden corpus not found (%v): its cases are skipped; set SWITCHYARD_GARDEN_TSV to its path", err)
		return nil
	}
	defer f.Close()
	var out []corpusCase
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, payload, ok := strings.Cut(line, "\t")
		if !ok {
			t.Fatalf("corpus line without a tab: %q", line)
		}
		raw, err := unescape(payload)
		if err != nil {
			t.Fatalf("corpus entry %s: %v", id, err)
		}
		out = append(out, corpusCase{name: "http-garden/" + id, raw: raw})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// smugglerGadgets are the Transfer-Encoding header mutations of
// defparam/smuggler (configs/default.py), written out here: the
// header-line gadget each one puts into a request that also carries a
// Content-Length.
func smugglerGadgets() map[string]string {
	g := map[string]string{
		"nameprefix1": " Transfer-Encoding: chunked",
		"tabprefix1":  "Transfer-Encoding:\tchunked",
		"tabprefix2":  "Transfer-Encoding\t:\tchunked",
		"space1":      "Transfer-Encoding : chunked",
	}
	for _, c := range []byte{0x1, 0x4, 0x8, 0x9, 0xa, 0xb, 0xc, 0xd, 0x1f, 0x20, 0x7f, 0xa0, 0xff} {
		s := string([]byte{c})
		g[fmt.Sprintf("midspace-%02x", c)] = "Transfer-Encoding:" + s + "chunked"
		g[fmt.Sprintf("postspace-%02x", c)] = "Transfer-Encoding" + s + ": chunked"
		g[fmt.Sprintf("prespace-%02x", c)] = s + "Transfer-Encoding: chunked"
		g[fmt.Sprintf("endspace-%02x", c)] = "Transfer-Encoding: chunked" + s
		g[fmt.Sprintf("xprespace-%02x", c)] = "X: X" + s + "Transfer-Encoding: chunked"
		g[fmt.Sprintf("endspacex-%02x", c)] = "Transfer-Encoding: chunked" + s + "X: X"
		g[fmt.Sprintf("rxprespace-%02x", c)] = "X: X\r" + s + "Transfer-Encoding: chunked"
		g[fmt.Sprintf("xnprespace-%02x", c)] = "X: X" + s + "\nTransfer-Encoding: chunked"
		g[fmt.Sprintf("endspacerx-%02x", c)] = "Transfer-Encoding: chunked\r" + s + "X: X"
		g[fmt.Sprintf("endspacexn-%02x", c)] = "Transfer-Encoding: chunked" + s + "\nX: X"
	}
	return g
}

// smugglerRequest renders a gadget as defparam/smuggler's template does:
// request line, gadget, Host, User-Agent, Content-Type, Content-Length.
func smugglerRequest(gadget, body string, cl int) string {
	return "POST /smuggler?cb=1 HTTP/1.1\r\n" + gadget + "\r\nHost: a\r\n" +
		"User-Agent: Mozilla/5.0\r\nContent-type: application/x-www-form-urlencoded; charset=UTF-8\r\n" +
		fmt.Sprintf("Content-Length: %d\r\n\r\n", cl) + body
}

// desyncPermutations are the HTTP/1 Transfer-Encoding permutations of
// PortSwigger/http-request-smuggler (src/burp/DesyncBox.java,
// applyDesync), written out here as rewrites of the header line
// "Transfer-Encoding: chunked" in a request.
func desyncPermutations() map[string]func(req string) string {
	const te = "Transfer-Encoding: "
	swap := func(from, to string) func(string) string {
		return func(r string) string { return strings.Replace(r, from, to, 1) }
	}
	p := map[string]func(string) string{
		"vanilla":      func(r string) string { return r },
		"underjoin1":   swap(te, "Transfer_Encoding: "),
		"spacejoin1":   swap(te, "Transfer Encoding: "),
		"space1":       swap(te, "Transfer-Encoding : "),
		"nameprefix1":  swap(te, "Foo: bar\r\n "+te),
		"nameprefix2":  swap(te, "Foo: bar\r\n\t"+te),
		"valueprefix1": swap(te, te+" "),
		"nospace1":     swap(te, "Transfer-Encoding:"),
		"linewrapped1": swap(te, "Transfer-Encoding:\n "),
		"gareth1":      swap(te, "Transfer-Encoding\n : "),
		"badsetupCR":   swap(te, "Foo: bar\r"+te),
		"badsetupLF":   swap(te, "Foo: bar\n"+te),
		"vertwrap":     swap(te, te+"\n\x0b"),
		"tabwrap":      swap(te, te+"\r\n\t"),
		"multiCase":    swap(te, "tRANSFER-ENCODING: "),
		"UPPERCASE":    swap(te, "TRANSFER-ENCODING: "),
		"0dwrap":       swap(te, "Foo: bar\r\n\r"+te),
		"0dspam":       swap(te, "Tra\rnsfer-Encoding: "),
		"connection":   swap(te, "Connection: Transfer-Encoding\r\n"+te),
		"spjunk":       swap(te, "Transfer-Encoding x: "),
		"backslash":    swap(te, "Transfer\\Encoding: "),
		"spaceFF":      swap(te, "Transfer-Encoding:\xff"),
		"unispace":     swap(te, "Transfer-Encoding:\xa0"),
		"commaCow":     swap(te+"chunked", te+"chunked, identity"),
		"cowComma":     swap(te, te+"identity, "),
		"contentEnc":   swap(te, "Content-Encoding: "),
		"quoted":       swap(te+"chunked", te+`"chunked"`),
		"aposed":       swap(te+"chunked", te+"'chunked'"),
		"dualchunk":    swap(te+"chunked", te+"chunked\r\nTransfer-encoding: identity"),
		"lazygrep":     swap(te+"chunked", te+"chunk"),
		"0dsuffix":     swap(te+"chunked", te+"chunked\r"),
		"tabsuffix":    swap(te+"chunked", te+"chunked\t"),
		"revdualchunk": swap(te+"chunked", te+"identity\r\n"+te+"chunked"),
		"nested":       swap(te+"chunked", te+"identity, chunked, identity"),
		"encode":       swap(te, "Transfer-%45ncoding: "),
		"accentTE":     swap(te, "Transf\x82r-Encoding: "),
		"accentCH":     swap(te+"chu", te+"ch\x96"),
		"badwrap":      swap(te+"chunked\r\n", "X-Blah-Ignore: chunked\r\n "+te+"chunked\r\n"),
		"bodysplit":    swap(te+"chunked", "X: y\r\nFoo: barn\n\nTransfer-Encoding: chunked"),
	}
	for _, c := range []byte{0, 9, 11, 12, 13, 127} {
		s := string([]byte{c})
		p[fmt.Sprintf("spacefix1:%d", c)] = swap(te, "Transfer-Encoding:"+s)
		p[fmt.Sprintf("prefix1:%d", c)] = swap(te, te+s)
		p[fmt.Sprintf("suffix1:%d", c)] = swap(te+"chunked", te+"chunked"+s)
	}
	return p
}

// The bodies every smuggling request carries: a chunked body that ends at
// once, followed by a request that is hidden if the Content-Length (which
// covers it) is believed, and pipelined if the chunking is.
const (
	hiddenRequest = "GET /hidden HTTP/1.1\r\nHost: a\r\n\r\n"
	smuggledBody  = "0\r\n\r\n" + hiddenRequest
	fastGET       = "GET /fast HTTP/1.1\r\nHost: a\r\n\r\n"
	fastTail      = "GET /tail HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
)

// corpusCases builds every case: each public payload alone, after a
// fast-path request on the same connection (a hand-over mid-pipeline),
// and followed by one.
func corpusCases(t *testing.T) []corpusCase {
	var base []corpusCase
	base = append(base, gardenCases(t)...)
	for name, gadget := range smugglerGadgets() {
		base = append(base,
			corpusCase{"smuggler/" + name + "/CL.TE", []byte(smugglerRequest(gadget, smuggledBody, len(smuggledBody)))},
			corpusCase{"smuggler/" + name + "/TE.CL", []byte(smugglerRequest(gadget, "1\r\nZ\r\nQ\r\n\r\n", 5))})
	}
	vanilla := "POST /desync HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: %d\r\n\r\n%s"
	for name, permute := range desyncPermutations() {
		base = append(base,
			corpusCase{"portswigger/" + name + "/CL.TE", []byte(permute(fmt.Sprintf(vanilla, len(smuggledBody), smuggledBody)))},
			corpusCase{"portswigger/" + name + "/TE.CL", []byte(permute(fmt.Sprintf(vanilla, 3, "1\r\nZ\r\n0\r\n\r\n")))})
	}
	var out []corpusCase
	for _, c := range base {
		out = append(out, c,
			corpusCase{c.name + "/after-fast-path", append([]byte(fastGET), c.raw...)},
			corpusCase{c.name + "/then-fast-path", append(append([]byte(nil), c.raw...), fastTail...)})
	}
	return out
}

// TestPublicSmugglingCorporaNeverDesyncTheBackend sends every payload of
// the public corpora on its own connection, from its own loopback address,
// and checks at a backend that parses with net/http's reader: each request
// the backend got is one net/http's reader finds at the same place in the
// client's bytes (same method, normalised path and body: framed as the
// gateway believed), its answer reached that client and no other, and
// nothing forwarded was refused by net/http's reader.
func TestPublicSmugglingCorporaNeverDesyncTheBackend(t *testing.T) {
	noLeaks(t)
	rb := newRecordingWire(t)
	g := start(t, func(c *config.Config) {
		// Short timeouts so that every connection is closed by the gateway
		// soon after its last answer: the end of a case is an EOF.
		c.Server.IdleTimeout = 300 * time.Millisecond
		c.Server.ReadHeaderTimeout = 300 * time.Millisecond
		c.Server.ReadTimeout = 300 * time.Millisecond
	}, rb.addr())
	cases := corpusCases(t)
	type result struct {
		got []byte
		err error
	}
	results := make([]result, len(cases))
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i, c := range cases {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			got, err := sendFrom(clientIP(i), g.proxyAddr(), c.raw, 10*time.Second)
			results[i] = result{got, err}
		}()
	}
	wg.Wait()

	for i, c := range cases {
		ip := clientIP(i)
		if err := results[i].err; err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		checkCase(t, rb, c, ip, results[i].got)
	}
	rb.mu.Lock()
	refused := rb.refused
	rb.mu.Unlock()
	for _, r := range refused {
		t.Errorf("the gateway forwarded bytes net/http's reader refuses: %s", r)
	}
	t.Logf("%d cases", len(cases))
	g.stillServes(t, "/", "tok-")
}

// checkCase compares what the backend got from one client with the
// oracle's reading of that client's bytes, and the answers the client got
// with the tokens the backend issued.
func checkCase(t *testing.T, rb *recordingWire, c corpusCase, ip string, got []byte) {
	t.Helper()
	want := oracle(c.raw)
	seen := rb.requestsFrom(ip)
	for k, r := range seen {
		if k >= len(want) {
			t.Errorf("%s: the backend got request %d (%v), net/http's reader finds only %d in the client's bytes", c.name, k+1, r, len(want))
			continue
		}
		w := want[k]
		if r.method != w.method || r.path != w.path || r.body != w.body {
			t.Errorf("%s: request %d reached the backend as %v, net/http's reader has %v", c.name, k+1, r, w)
		}
		if !strings.Contains(string(got), r.token) {
			t.Errorf("%s: the answer to %v (%s) never reached its client; it got %q", c.name, r, r.token, got)
		}
	}
	others := rb.tokensBut(ip)
	for _, tok := range tokenRE.FindAllString(string(got), -1) {
		if from, ok := others[tok]; ok {
			t.Errorf("%s: the client got the answer meant for %s", c.name, from)
		}
	}
}
