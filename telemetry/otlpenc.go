package telemetry

import (
	"math"
	"strings"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/encoding/protowire"
)

// otlpEncoder writes spans as an OTLP ExportTraceServiceRequest
// (opentelemetry/proto/collector/trace/v1/trace_service.proto) straight
// into a byte slice that it reuses from one batch to the next: no proto
// structs, no reflection, no allocation per span or attribute. It writes
// what the official exporter's transform writes (the round trip through
// the official proto types is checked by TestOTLPEncoderMatchesOfficial),
// except that strings that are not valid UTF-8 are repaired instead of
// failing the whole batch.
//
// Not safe for concurrent use.
type otlpEncoder struct {
	buf []byte
	// Encoded Resource and InstrumentationScope messages, kept for the
	// last resource and scopes seen: they are the same for every batch.
	resKey   *resource.Resource
	resMsg   []byte
	scopeMsg map[instrumentation.Scope][]byte
	// groups and idx are scratch for grouping a batch: the distinct
	// (resource, scope) pairs, and each span's pair (-1: a nil span).
	groups []encGroup
	idx    []int32
	rec    spanRec // scratch: the span being written
}

// encGroup is one (resource, scope) pair of a batch.
type encGroup struct {
	res   attribute.Distinct
	r     *resource.Resource
	scope instrumentation.Scope
}

// Field numbers of the OTLP trace messages.
const (
	reqResourceSpans = 1 // ExportTraceServiceRequest.resource_spans

	rsResource   = 1 // ResourceSpans.resource
	rsScopeSpans = 2
	rsSchemaURL  = 3

	resAttributes = 1 // Resource.attributes

	ssScope     = 1 // ScopeSpans.scope
	ssSpans     = 2
	ssSchemaURL = 3

	scopeName       = 1 // InstrumentationScope.name
	scopeVersion    = 2
	scopeAttributes = 3

	spanTraceID       = 1
	spanSpanID        = 2
	spanTraceState    = 3
	spanParentSpanID  = 4
	spanName          = 5
	spanKind          = 6
	spanStart         = 7
	spanEnd           = 8
	spanAttributes    = 9
	spanDroppedAttrs  = 10
	spanEvents        = 11
	spanDroppedEvents = 12
	spanLinks         = 13
	spanDroppedLinks  = 14
	spanStatus        = 15
	spanFlags         = 16

	eventTime         = 1
	eventName         = 2
	eventAttributes   = 3
	eventDroppedAttrs = 4

	linkTraceID      = 1
	linkSpanID       = 2
	linkAttributes   = 4
	linkDroppedAttrs = 5
	linkFlags        = 6

	statusMessage = 2
	statusCode    = 3

	kvKey   = 1
	kvValue = 2

	anyString = 1
	anyBool   = 2
	anyInt    = 3
	anyDouble = 4
	anyArray  = 5
	anyKvlist = 6
	anyBytes  = 7

	listValues = 1 // ArrayValue.values, KeyValueList.values
)

// Span flags (trace.proto SpanFlags): the W3C trace flags in the low
// byte, and whether the parent is remote, which the SDK always knows.
const (
	flagHasIsRemote = 0x100
	flagIsRemote    = 0x200
)

// encode returns the request holding spans. The result is valid until
// the next call.
func (e *otlpEncoder) encode(spans []sdktrace.ReadOnlySpan) []byte {
	b := e.buf[:0]
	e.group(spans)
	for i := 0; i < len(e.groups); {
		// Groups of one resource are next to each other (see group).
		g := e.groups[i]
		var rs int
		b, rs = openMsg(b, reqResourceSpans)
		if g.r != nil {
			b = appendTag(b, rsResource, protowire.BytesType)
			b = appendBytes(b, e.resource(g.r))
		}
		j := i
		for ; j < len(e.groups) && e.groups[j].res == g.res; j++ {
			sg := e.groups[j]
			var ss int
			b, ss = openMsg(b, rsScopeSpans)
			if sg.scope != (instrumentation.Scope{}) {
				b = appendTag(b, ssScope, protowire.BytesType)
				b = appendBytes(b, e.scope(sg.scope))
			}
			for k, s := range spans {
				if e.idx[k] == int32(j) {
					var sp int
					b, sp = openMsg(b, ssSpans)
					e.rec.fill(s)
					b = appendSpan(b, &e.rec)
					b = closeMsg(b, sp)
				}
			}
			b = appendString(b, ssSchemaURL, sg.scope.SchemaURL)
			b = closeMsg(b, ss)
		}
		if g.r != nil {
			b = appendString(b, rsSchemaURL, g.r.SchemaURL())
		}
		b = closeMsg(b, rs)
		i = j
	}
	e.rec = spanRec{}
	e.buf = b
	return b
}

// encodeSpans returns the request holding spans, Span messages already
// encoded (appendSpan), each as a ScopeSpans.spans field, all of resource
// res and scope scope. The result is valid until the next call.
func (e *otlpEncoder) encodeSpans(res *resource.Resource, scope instrumentation.Scope, spans []byte) []byte {
	b := e.buf[:0]
	var rs, ss int
	b, rs = openMsg(b, reqResourceSpans)
	if res != nil {
		b = appendTag(b, rsResource, protowire.BytesType)
		b = appendBytes(b, e.resource(res))
	}
	b, ss = openMsg(b, rsScopeSpans)
	if scope != (instrumentation.Scope{}) {
		b = appendTag(b, ssScope, protowire.BytesType)
		b = appendBytes(b, e.scope(scope))
	}
	b = append(b, spans...)
	b = appendString(b, ssSchemaURL, scope.SchemaURL)
	b = closeMsg(b, ss)
	if res != nil {
		b = appendString(b, rsSchemaURL, res.SchemaURL())
	}
	b = closeMsg(b, rs)
	e.buf = b
	return b
}

// group lists the batch's distinct (resource, scope) pairs in e.groups,
// those of one resource next to each other, in the order first seen, and
// each span's pair in e.idx.
func (e *otlpEncoder) group(spans []sdktrace.ReadOnlySpan) {
	e.groups = e.groups[:0]
	e.idx = e.idx[:0]
	for _, s := range spans {
		if s == nil {
			e.idx = append(e.idx, -1)
			continue
		}
		r := s.Resource()
		g := encGroup{res: r.Equivalent(), r: r, scope: s.InstrumentationScope()}
		at, found := len(e.groups), -1
		for i := range e.groups {
			if e.groups[i].res == g.res {
				at = i + 1
				if e.groups[i].scope == g.scope {
					found = i
					break
				}
			}
		}
		if found < 0 {
			e.groups = append(e.groups, encGroup{})
			copy(e.groups[at+1:], e.groups[at:])
			e.groups[at] = g
			found = at
			for k := range e.idx { // pairs after the new one move up
				if e.idx[k] >= int32(at) {
					e.idx[k]++
				}
			}
		}
		e.idx = append(e.idx, int32(found))
	}
}

// resource returns r's encoded Resource message.
func (e *otlpEncoder) resource(r *resource.Resource) []byte {
	if r != e.resKey {
		var m []byte
		for it := r.Iter(); it.Next(); {
			m = appendCheckedKeyValue(m, resAttributes, it.Attribute())
		}
		e.resKey, e.resMsg = r, m
	}
	return e.resMsg
}

// scope returns s's encoded InstrumentationScope message.
func (e *otlpEncoder) scope(s instrumentation.Scope) []byte {
	if m, ok := e.scopeMsg[s]; ok {
		return m
	}
	var m []byte
	m = appendString(m, scopeName, s.Name)
	m = appendString(m, scopeVersion, s.Version)
	for it := s.Attributes.Iter(); it.Next(); {
		m = appendCheckedKeyValue(m, scopeAttributes, it.Attribute())
	}
	if e.scopeMsg == nil || len(e.scopeMsg) > 64 { // scopes are few; bound it anyway
		e.scopeMsg = map[instrumentation.Scope][]byte{}
	}
	e.scopeMsg[s] = m
	return m
}

// appendSpan appends the fields of s's Span message.
func appendSpan(b []byte, s *spanRec) []byte {
	sc := s.sc
	tid, sid := sc.TraceID(), sc.SpanID()
	b = appendTag(b, spanTraceID, protowire.BytesType)
	b = appendBytes(b, tid[:])
	b = appendTag(b, spanSpanID, protowire.BytesType)
	b = appendBytes(b, sid[:])
	if ts := sc.TraceState(); ts.Len() > 0 {
		b = appendString(b, spanTraceState, ts.String())
	}
	if psid := s.parent.SpanID(); psid.IsValid() {
		b = appendTag(b, spanParentSpanID, protowire.BytesType)
		b = appendBytes(b, psid[:])
	}
	b = appendString(b, spanName, s.name)
	if k := otlpSpanKind(s.kind); k != 0 {
		b = appendTag(b, spanKind, protowire.VarintType)
		b = appendVarint(b, k)
	}
	b = appendTime(b, spanStart, s.start.UnixNano())
	b = appendTime(b, spanEnd, s.end.UnixNano())
	for _, kv := range s.attrs {
		b = appendKeyValue(b, spanAttributes, kv)
	}
	b = appendCount(b, spanDroppedAttrs, s.droppedAttrs)
	for _, ev := range s.events {
		var m int
		b, m = openMsg(b, spanEvents)
		b = appendTime(b, eventTime, ev.Time.UnixNano())
		b = appendString(b, eventName, ev.Name)
		for _, kv := range ev.Attributes {
			b = appendKeyValue(b, eventAttributes, kv)
		}
		b = appendCount(b, eventDroppedAttrs, ev.DroppedAttributeCount)
		b = closeMsg(b, m)
	}
	b = appendCount(b, spanDroppedEvents, s.droppedEvents)
	for _, l := range s.links {
		var m int
		b, m = openMsg(b, spanLinks)
		ltid, lsid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
		b = appendTag(b, linkTraceID, protowire.BytesType)
		b = appendBytes(b, ltid[:])
		b = appendTag(b, linkSpanID, protowire.BytesType)
		b = appendBytes(b, lsid[:])
		for _, kv := range l.Attributes {
			b = appendKeyValue(b, linkAttributes, kv)
		}
		b = appendCount(b, linkDroppedAttrs, l.DroppedAttributeCount)
		b = appendTag(b, linkFlags, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, spanFlags32(l.SpanContext.TraceFlags(), l.SpanContext))
		b = closeMsg(b, m)
	}
	b = appendCount(b, spanDroppedLinks, s.droppedLinks)
	// The official transform always sets a status, even an empty one.
	var m int
	b, m = openMsg(b, spanStatus)
	b = appendString(b, statusMessage, s.desc)
	switch s.status {
	case codes.Ok:
		b = appendTag(b, statusCode, protowire.VarintType)
		b = appendVarint(b, 1)
	case codes.Error:
		b = appendTag(b, statusCode, protowire.VarintType)
		b = appendVarint(b, 2)
	}
	b = closeMsg(b, m)
	b = appendTag(b, spanFlags, protowire.Fixed32Type)
	return protowire.AppendFixed32(b, spanFlags32(sc.TraceFlags(), s.parent))
}

func spanFlags32(tf trace.TraceFlags, parent trace.SpanContext) uint32 {
	f := uint32(tf) | flagHasIsRemote
	if parent.IsRemote() {
		f |= flagIsRemote
	}
	return f
}

// otlpSpanKind maps a span kind to trace.proto's Span.SpanKind.
func otlpSpanKind(k trace.SpanKind) uint64 {
	switch k {
	case trace.SpanKindInternal:
		return 1
	case trace.SpanKindServer:
		return 2
	case trace.SpanKindClient:
		return 3
	case trace.SpanKindProducer:
		return 4
	case trace.SpanKindConsumer:
		return 5
	}
	return 0
}

// appendKeyValue appends kv as a KeyValue message in field num.
func appendKeyValue(b []byte, num protowire.Number, kv attribute.KeyValue) []byte {
	var m int
	b, m = openMsg(b, num)
	if kv.Key != "" {
		// Not checked for UTF-8: span attribute keys are the program's
		// constants; the resource's and scope's, which may come from the
		// environment, go through appendCheckedKeyValue once.
		b = appendTag(b, kvKey, protowire.BytesType)
		b = appendStringBytes(b, string(kv.Key))
	}
	var v int
	b, v = openMsg(b, kvValue)
	b = appendAnyValue(b, kv.Value)
	b = closeMsg(b, v)
	return closeMsg(b, m)
}

// appendCheckedKeyValue is appendKeyValue with the key made valid UTF-8.
func appendCheckedKeyValue(b []byte, num protowire.Number, kv attribute.KeyValue) []byte {
	kv.Key = attribute.Key(validUTF8(string(kv.Key)))
	return appendKeyValue(b, num, kv)
}

// appendAnyValue appends the fields of v's AnyValue message.
func appendAnyValue(b []byte, v attribute.Value) []byte {
	switch v.Type() {
	case attribute.BOOL:
		return appendBool(b, v.AsBool())
	case attribute.INT64:
		return appendInt(b, v.AsInt64())
	case attribute.FLOAT64:
		return appendDouble(b, v.AsFloat64())
	case attribute.STRING:
		return appendOneofString(b, v.AsString())
	case attribute.BYTESLICE:
		b = appendTag(b, anyBytes, protowire.BytesType)
		return appendBytes(b, v.AsByteSlice())
	case attribute.BOOLSLICE:
		return appendArray(b, v.AsBoolSlice(), appendBool)
	case attribute.INT64SLICE:
		return appendArray(b, v.AsInt64Slice(), appendInt)
	case attribute.FLOAT64SLICE:
		return appendArray(b, v.AsFloat64Slice(), appendDouble)
	case attribute.STRINGSLICE:
		return appendArray(b, v.AsStringSlice(), appendOneofString)
	case attribute.SLICE:
		return appendArray(b, v.AsSlice(), appendAnyValue)
	case attribute.MAP:
		b, m := openMsg(b, anyKvlist)
		for _, kv := range v.AsMap() {
			b = appendKeyValue(b, listValues, kv)
		}
		return closeMsg(b, m)
	case attribute.EMPTY:
		return b
	}
	return appendOneofString(b, "INVALID")
}

// appendArray appends an ArrayValue of xs, each element an AnyValue that
// one appends.
func appendArray[T any](b []byte, xs []T, one func([]byte, T) []byte) []byte {
	b, m := openMsg(b, anyArray)
	for _, x := range xs {
		var e int
		b, e = openMsg(b, listValues)
		b = closeMsg(one(b, x), e)
	}
	return closeMsg(b, m)
}

func appendBool(b []byte, x bool) []byte {
	b = appendTag(b, anyBool, protowire.VarintType)
	return appendVarint(b, protowire.EncodeBool(x))
}

func appendInt(b []byte, x int64) []byte {
	b = appendTag(b, anyInt, protowire.VarintType)
	return appendVarint(b, uint64(x))
}

func appendDouble(b []byte, x float64) []byte {
	b = appendTag(b, anyDouble, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, math.Float64bits(x))
}

// appendOneofString appends a oneof string field, which is written even
// when empty.
func appendOneofString(b []byte, s string) []byte {
	b = appendTag(b, anyString, protowire.BytesType)
	return appendStringBytes(b, validUTF8(s))
}

// appendString appends a proto3 string field, left out when empty.
func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = appendTag(b, num, protowire.BytesType)
	return appendStringBytes(b, validUTF8(s))
}

// validUTF8 returns s, with invalid bytes replaced when there are any: a
// collector rejects the whole request over one bad string field. ASCII,
// nearly every string here, is told apart with a plain loop.
func validUTF8(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			if utf8.ValidString(s[i:]) {
				return s
			}
			return strings.ToValidUTF8(s, "\uFFFD")
		}
	}
	return s
}

// The encoder's own appenders: every field number here but Span.flags is
// below 16 and most lengths and values are below 128, so a tag or a length
// is nearly always one byte, written without protowire's general case.

func appendTag(b []byte, num protowire.Number, typ protowire.Type) []byte {
	if num < 16 {
		return append(b, byte(num)<<3|byte(typ))
	}
	return appendLongTag(b, num, typ)
}

// appendLongTag is appendTag's rare case, apart so that appendTag inlines.
func appendLongTag(b []byte, num protowire.Number, typ protowire.Type) []byte {
	return protowire.AppendTag(b, num, typ)
}

func appendVarint(b []byte, v uint64) []byte {
	if v < 0x80 {
		return append(b, byte(v))
	}
	return protowire.AppendVarint(b, v)
}

func appendStringBytes(b []byte, s string) []byte {
	return append(appendVarint(b, uint64(len(s))), s...)
}

func appendBytes(b []byte, v []byte) []byte {
	return append(appendVarint(b, uint64(len(v))), v...)
}

// appendTime appends a fixed64 Unix time in nanoseconds, left out when
// zero; negative times are zero.
func appendTime(b []byte, num protowire.Number, ns int64) []byte {
	if ns <= 0 {
		return b
	}
	b = appendTag(b, num, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, uint64(ns))
}

// appendCount appends a uint32 count, left out when zero, clamped.
func appendCount(b []byte, num protowire.Number, n int) []byte {
	if n <= 0 {
		return b
	}
	b = appendTag(b, num, protowire.VarintType)
	return appendVarint(b, uint64(min(int64(n), math.MaxUint32)))
}

// openMsg starts an embedded message in field num, with one byte kept for
// its length, and returns where its content starts; closeMsg writes the
// length there, moving the content when the length needs more bytes.
// Most messages (attributes, statuses, events) are shorter than 128
// bytes and never move; a span moves by a byte or two, once.
func openMsg(b []byte, num protowire.Number) ([]byte, int) {
	b = appendTag(b, num, protowire.BytesType)
	b = append(b, 0)
	return b, len(b)
}

func closeMsg(b []byte, start int) []byte {
	n := len(b) - start
	if n < 0x80 {
		b[start-1] = byte(n)
		return b
	}
	extra := protowire.SizeVarint(uint64(n)) - 1
	for range extra {
		b = append(b, 0)
	}
	copy(b[start+extra:], b[start:start+n])
	protowire.AppendVarint(b[:start-1], uint64(n))
	return b
}
