package telemetry

import (
	"context"
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"net/http"
	"strings"
	"unsafe"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-gw/switchyard/config"
)

// headRule is the head sampler's rule, applied by the Request hook without
// the SDK: each of the standard samplers (newSampler) decides from a valid
// parent's sampled flag (parent-based ones) or else from the trace id
// alone, as TraceIDRatioBased does. The SDK applies its own sampler again
// to the server span of a sampled request, on the same ids and parent, and
// comes to the same decision.
type headRule struct {
	parentBased bool
	// A root is sampled when the last 8 bytes of its trace id, shifted
	// right by one, are below bound: 0 never, 1<<63 always.
	bound uint64
}

// newHeadRule returns the rule of the sampler newSampler builds from the
// same name and argument; the name is one newSampler accepts.
func newHeadRule(name string, arg float64) headRule {
	name = strings.TrimPrefix(name, config.FailuresSamplerPrefix)
	var h headRule
	name, h.parentBased = strings.CutPrefix(name, "parentbased_")
	switch name {
	case "always_on":
		h.bound = 1 << 63
	case "traceidratio":
		switch {
		case arg >= 1:
			h.bound = 1 << 63
		case arg > 0:
			h.bound = uint64(arg * (1 << 63)) // as sdktrace.TraceIDRatioBased
		}
	}
	return h
}

// sampled is the decision for a server span of trace tid whose incoming
// parent is parent (invalid: none, or not trusted).
func (h headRule) sampled(parent trace.SpanContext, tid trace.TraceID) bool {
	if s, ok := h.decided(parent); ok {
		return s
	}
	return h.byID(tid)
}

// byID is the decision of the ratio for trace tid: its last 8 bytes,
// shifted right by one, below bound.
func (h headRule) byID(tid trace.TraceID) bool {
	return binary.BigEndian.Uint64(tid[8:16])>>1 < h.bound
}

// decided reports whether the decision for a server span whose incoming
// parent is parent does not depend on the trace id (a parent-based rule
// with a valid parent, a ratio of 0 or 1), and if so what it is.
func (h headRule) decided(parent trace.SpanContext) (sampled, ok bool) {
	switch {
	case h.parentBased && parent.IsValid():
		return parent.IsSampled(), true
	case h.bound == 0:
		return false, true
	case h.bound == 1<<63:
		return true, true
	}
	return false, false
}

// extractParent reads the traceparent and tracestate of h as
// propagation.TraceContext's Extract does, without making a context: the
// remote span context, invalid when there is none or it is malformed.
func extractParent(h http.Header) trace.SpanContext {
	v := h["Traceparent"]
	if len(v) == 0 || v[0] == "" {
		return trace.SpanContext{}
	}
	s := v[0]
	var ver [1]byte
	if !hexPart(ver[:], &s, 2) || ver[0] == 0xff {
		return trace.SpanContext{}
	}
	var c trace.SpanContextConfig
	var flags [1]byte
	if !hexPart(c.TraceID[:], &s, 32) || !hexPart(c.SpanID[:], &s, 16) || !hexPart(flags[:], &s, 2) {
		return trace.SpanContext{}
	}
	if ver[0] == 0 && (s != "" || flags[0] > 3) {
		// Version 00 has no further fields and no other flag bits.
		return trace.SpanContext{}
	}
	c.TraceFlags = trace.TraceFlags(flags[0]) & (trace.FlagsSampled | trace.FlagsRandom)
	if ts := h["Tracestate"]; len(ts) > 0 {
		// A malformed tracestate is dropped; the traceparent stands.
		c.TraceState, _ = trace.ParseTraceState(ts[0])
	}
	c.Remote = true
	sc := trace.NewSpanContext(c)
	if !sc.IsValid() {
		return trace.SpanContext{}
	}
	return sc
}

// hexPart decodes the next "-"-separated field of *s, which must be n
// lower-case hex digits, into dst, and leaves the rest in *s.
func hexPart(dst []byte, s *string, n int) bool {
	part, rest, _ := strings.Cut(*s, "-")
	*s = rest
	if len(part) != n {
		return false
	}
	for i := 0; i < n; i += 2 {
		hi, lo := unhex(part[i]), unhex(part[i+1])
		if hi|lo > 0xf {
			return false
		}
		dst[i/2] = hi<<4 | lo
	}
	return true
}

// unhex is the value of a lower-case hex digit; 0xff for anything else
// (W3C trace context allows lower case only).
func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return 0xff
}

// traceparent is one traceparent header value, formatted in place: the
// header's slice and string point into it, so sending it costs no
// allocation beyond the request state that holds it.
type traceparent struct {
	v [1]string
	b [55]byte // 00-<32 hex>-<16 hex>-<2 hex>
}

// set formats the value; it must not be called again while anything
// holds v, which was sent (a reqState that holds it is released first).
func (tp *traceparent) set(tid trace.TraceID, sid trace.SpanID, flags trace.TraceFlags) {
	b := tp.b[:]
	b[0], b[1], b[2], b[35], b[52] = '0', '0', '-', '-', '-'
	binary.BigEndian.PutUint64(b[3:], hex8(binary.BigEndian.Uint32(tid[0:])))
	binary.BigEndian.PutUint64(b[11:], hex8(binary.BigEndian.Uint32(tid[4:])))
	binary.BigEndian.PutUint64(b[19:], hex8(binary.BigEndian.Uint32(tid[8:])))
	binary.BigEndian.PutUint64(b[27:], hex8(binary.BigEndian.Uint32(tid[12:])))
	binary.BigEndian.PutUint64(b[36:], hex8(binary.BigEndian.Uint32(sid[0:])))
	binary.BigEndian.PutUint64(b[44:], hex8(binary.BigEndian.Uint32(sid[4:])))
	b[53], b[54] = hexDigits[flags>>4], hexDigits[flags&0xf]
	tp.v[0] = unsafe.String(&b[0], len(b))
}

const hexDigits = "0123456789abcdef"

// hex8 returns the 8 lower-case hex digits of x as the bytes of a
// big-endian uint64, computed on all eight at once: each nibble is spread
// into a byte of its own, then turned into '0'-'9' or 'a'-'f'.
func hex8(x uint32) uint64 {
	v := uint64(x)
	v = (v | v<<16) & 0x0000ffff0000ffff
	v = (v | v<<8) & 0x00ff00ff00ff00ff
	v = (v | v<<4) & 0x0f0f0f0f0f0f0f0f
	letters := (v + 0x0606060606060606) >> 4 & 0x0101010101010101 // 1 in each byte from 10 up
	return v + 0x3030303030303030 + letters*('a'-'0'-10)
}

// isSet reports whether set was called.
func (tp *traceparent) isSet() bool { return tp.v[0] != "" }

// ids returns the trace and span ids set formatted.
func (tp *traceparent) ids() (tid trace.TraceID, sid trace.SpanID) {
	s := tp.v[0][3:]
	hexPart(tid[:], &s, 32)
	hexPart(sid[:], &s, 16)
	return tid, sid
}

// inject sets tp on an outgoing request, with the tracestate ts ("" for
// none), replacing what an earlier attempt or the client sent.
func (tp *traceparent) inject(h http.Header, ts string) {
	h["Traceparent"] = tp.v[:]
	// The key is canonical already: no Header.Del.
	delete(h, "Tracestate")
	if ts != "" {
		h["Tracestate"] = []string{ts}
	}
}

// forcedIDs, in a context, are the ids idGen hands out for the next span.
type forcedIDs struct {
	trace trace.TraceID
	span  trace.SpanID
}

type forcedKey struct{}

// idGen gives a span the ids found in its context (forcedIDs: the ids the
// head sampler decided on, or those already sent upstream) and random
// ones otherwise. Safe for concurrent use.
type idGen struct{}

var _ sdktrace.IDGenerator = idGen{}

func (idGen) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	if f, ok := ctx.Value(forcedKey{}).(forcedIDs); ok {
		return f.trace, f.span
	}
	return randomTraceID(), randomSpanID()
}

func (idGen) NewSpanID(ctx context.Context, _ trace.TraceID) trace.SpanID {
	if f, ok := ctx.Value(forcedKey{}).(forcedIDs); ok {
		return f.span
	}
	return randomSpanID()
}

func randomTraceID() trace.TraceID {
	var t trace.TraceID
	for !t.IsValid() {
		binary.BigEndian.PutUint64(t[:8], rand.Uint64())
		binary.BigEndian.PutUint64(t[8:], rand.Uint64())
	}
	return t
}

func randomSpanID() trace.SpanID {
	var s trace.SpanID
	for !s.IsValid() {
		binary.BigEndian.PutUint64(s[:], rand.Uint64())
	}
	return s
}

// idRand draws the ids of unsampled requests: wyrand, a 64-bit generator
// of a few instructions per draw, one per request state, seeded from the
// runtime's generator when the state is made. Three draws from the
// runtime's generator, the cost of ids otherwise, were a tenth of what
// an unsampled request costs telemetry. Ids need to be unique and
// uniform, not secret: the OTel SDK's own generator is not a secure one
// either. Not safe for concurrent use: a state serves one request at a
// time.
type idRand struct{ s uint64 }

func newIDRand() idRand { return idRand{rand.Uint64()} }

func (r *idRand) next() uint64 {
	r.s += 0xa0761d6478bd642f
	hi, lo := bits.Mul64(r.s, r.s^0xe7037ed1a0b428db)
	return hi ^ lo
}

// traceID returns a valid random trace id.
func (r *idRand) traceID() trace.TraceID {
	var t trace.TraceID
	for !t.IsValid() {
		binary.BigEndian.PutUint64(t[:8], r.next())
		binary.BigEndian.PutUint64(t[8:], r.next())
	}
	return t
}

// spanID returns a valid random span id.
func (r *idRand) spanID() trace.SpanID {
	var s trace.SpanID
	for !s.IsValid() {
		binary.BigEndian.PutUint64(s[:], r.next())
	}
	return s
}
