// Package h1 is the HTTP/1 wire layer: a server fast path in front of
// net/http, an upstream transport with its connection pool, the parsers
// both use, and a framing guard for the listener. It knows nothing of
// routes, services or instances; it imports only the standard library
// and golang.org/x/net.
//
// What the fast path serves (Server): cleartext HTTP/1.0 and HTTP/1.1
// requests without a body, without Upgrade or Expect, with an
// origin-form target, a standard method other than CONNECT, a valid Host
// and a head of at most 8 KiB whose every line it reads exactly as
// net/http would (FuzzServerParse compares the two). Such a request is
// parsed once and answered on the connection's goroutine.
//
// What it hands to net/http, and when: the first request on a connection
// that is anything else, or that the fast path does not fully understand,
// hands the whole connection, with every byte already read, to
// Server.Fallback, which serves it from then on. Malformed requests are
// thereby answered by net/http exactly as without the fast path.
//
// What it gives up: net/http's background read. A client that closes its
// connection while its request waits for the upstream is noticed when the
// response is written, not before; the upstream wait stays bounded by the
// transport's response header timeout. Interim (1xx) upstream responses
// are not forwarded on the transport's fast exchange.
//
// The upstream side (Transport) carries body-less requests on pooled
// keep-alive connections, parsing the common response head in place
// (FuzzResponseHead compares it with http.ReadResponse) and leaving
// everything else to its Fallback round tripper. It makes one attempt per
// RoundTrip and never sends a request again by itself: a pooled
// connection found closed by the upstream is reported as ErrStaleConn,
// and the caller decides, so the caller sees every attempt. Classify and
// Reason read upstream errors (this Transport's, net/http's, a dialer's)
// for everyone who branches on them.
//
// A pooled upstream connection is reused only when it is provably at a
// message boundary with nothing unread: checked when it is returned
// (nothing buffered, nothing read past a Content-Length body) and right
// before the next request is written on it (a non-blocking peek: data or
// EOF on an idle connection closes it, and the request goes to another).
// On Unix the peek, the request's write and the wait for the response are
// one step, which spares the read that would find no response yet.
// AtBoundary offers the same peek to other keepers of idle connections
// (the health checker's probe connections). A response that answers no request sent (an unasked 101, a stray
// 1xx) never leaves its connection pooled; ambiguous upstream framing (a
// version other than HTTP/1.0 or 1.1, a status below 100, white space in a
// field name, two different Content-Lengths) is refused with the
// connection closed (FuzzUpstreamExchange compares all this with net/http's
// Transport on the same bytes).
//
// StrictListener rejects ambiguous request framing (Content-Length with
// Transfer-Encoding, bare LF in chunking, Transfer-Encoding before
// HTTP/1.1) before either server parses it (FuzzStrictFraming), for every
// byte net/http may read as HTTP/1 and for the connection's whole life:
// only a 101 written after an upgrade (SwitchingProtocols) or the HTTP/2
// preface with cleartext HTTP/2 on ends it. OriginForm is the rule for
// which request targets may be forwarded.
package h1
