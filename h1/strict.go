package h1

import (
	"bytes"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
)

// StrictListener wraps a listener so that every HTTP/1 request on its
// connections is framed unambiguously before net/http parses it. net/http
// follows RFC 9112 and quietly resolves some ambiguities (Content-Length
// together with Transfer-Encoding, a bare LF ending a chunk size) that other
// servers along the path may resolve differently: the root of request
// smuggling. A request with such framing is turned into one that net/http
// rejects with 400, and the connection is closed after it.
//
// The check holds for every byte of the connection net/http may read as
// HTTP/1, for its whole life: a request head is checked up to the size
// net/http reads before answering 431 (MaxHeaderBytes plus its slack), and
// anything longer is refused, not passed. Only two things end checking:
// the HTTP/2 preface when cleartext HTTP/2 is on (refused when it is off),
// and a 101 Switching Protocols written on the connection after the
// server hijacked it for an upgrade (see SwitchingProtocols). A client
// that asks for an upgrade it does not get stays checked.
func StrictListener(ln net.Listener, opt StrictOptions) net.Listener {
	max := opt.MaxHeaderBytes
	if max <= 0 {
		max = http.DefaultMaxHeaderBytes
	}
	// net/http reads a head up to MaxHeaderBytes + 4096 past what its
	// 4 KiB reader already holds.
	return strictListener{ln, max + 8<<10, opt.H2C}
}

// StrictOptions are the server settings the check must agree with.
type StrictOptions struct {
	MaxHeaderBytes int  // http.Server.MaxHeaderBytes; 0: net/http's default
	H2C            bool // cleartext HTTP/2 with prior knowledge is served
}

type strictListener struct {
	net.Listener
	limit int
	h2c   bool
}

func (l strictListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &strictConn{Conn: c, limit: l.limit, h2c: l.h2c}, nil
}

// Framing states.
const (
	sHead      = iota // reading a request head up to the blank line
	sBody             // skipping a Content-Length body
	sChunkLine        // reading a chunk-size line
	sChunkData        // skipping chunk data
	sChunkCRLF        // expecting the CRLF after chunk data
	sTrailer          // reading trailer lines up to the blank line
	sPass             // HTTP/2 or upgraded: no more checks
)

// maxChunkLine bounds a chunk-size or trailer line, as net/http's chunked
// reader does (4096 bytes); a longer one is refused.
const maxChunkLine = 4 << 10

// strictConn checks framing on the bytes net/http reads. net/http never
// calls Read concurrently (its connection reader serialises the handler's
// body reads and its background read), so the state needs no lock.
type strictConn struct {
	net.Conn
	limit    int  // longest request head net/http may read
	h2c      bool // the HTTP/2 preface switches checking off
	state    int
	buf      []byte // partial line
	head     []byte // complete lines of the current request head
	left     int64  // bytes left in a body or chunk
	crlf     int    // bytes of the CRLF after chunk data already seen
	pending  []byte // poisoned bytes still to hand to net/http
	poisoned bool
	passed   atomic.Bool // a 101 was written: the connection is upgraded
	// armed is set by SwitchingProtocols once the server hijacked the
	// connection for an upgrade: a 101 written next ends checking.
	armed atomic.Bool
	// lastUpgrade: the last request head asked for a protocol switch.
	lastUpgrade atomic.Bool
}

// Write passes b on; while armed, a 101 response written after an upgrade
// request switches checking off for good (what follows is the upgraded
// protocol), and anything else disarms.
func (c *strictConn) Write(b []byte) (int, error) {
	if !c.armed.Load() {
		return c.Conn.Write(b)
	}
	c.armed.Store(false)
	n, err := c.Conn.Write(b)
	if err == nil && c.lastUpgrade.Load() && len(b) >= 13 && bytes.HasPrefix(b, []byte("HTTP/1.")) && string(b[8:13]) == " 101 " {
		c.passed.Store(true)
	}
	return n, err
}

// SwitchingProtocols is called with a connection hijacked from the server
// to answer an upgrade request with 101 (it may wrap the accepted
// connection, exposing it through a NetConn method). When the connection
// came from StrictListener, its framing check stops once that 101 has been
// written on it; a connection of any other kind is left alone.
func SwitchingProtocols(c net.Conn) {
	for c != nil {
		switch v := c.(type) {
		case *strictConn:
			v.armed.Store(true)
			return
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return
		}
	}
}

func (c *strictConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	if c.poisoned {
		return 0, net.ErrClosed
	}
	if c.state != sPass && c.passed.Load() {
		c.state, c.buf, c.head = sPass, nil, nil
	}
	n, err := c.Conn.Read(p)
	if n > 0 && c.state != sPass {
		if bad := c.scan(p[:n]); bad >= 0 {
			// Hand over what came before the bad framing, then a line that
			// net/http rejects with 400 Bad Request.
			c.poisoned = true
			if c.state == sHead {
				c.pending = []byte("\x00\r\n\r\n") // a malformed header line
			} else {
				c.pending = []byte("zz\r\n") // malformed chunking: the body read fails
			}
			return bad, nil
		}
	}
	return n, err
}

// scan advances the framing state over b. It returns the offset in b up to
// which the bytes are good when a violation is found, or -1.
func (c *strictConn) scan(b []byte) int {
	i := 0
	for i < len(b) {
		switch c.state {
		case sPass:
			return -1
		case sBody, sChunkData:
			n := int64(len(b) - i)
			if n > c.left {
				n = c.left
			}
			i += int(n)
			c.left -= n
			if c.left == 0 {
				if c.state == sBody {
					c.state = sHead
				} else {
					c.state, c.crlf = sChunkCRLF, 0
				}
			}
		case sChunkCRLF:
			want := "\r\n"[c.crlf]
			if b[i] != want {
				return c.goodUpTo(i)
			}
			i++
			c.crlf++
			if c.crlf == 2 {
				c.state = sChunkLine
			}
		case sHead, sChunkLine, sTrailer:
			j := bytes.IndexByte(b[i:], '\n')
			if j < 0 {
				c.buf = append(c.buf, b[i:]...)
				if len(c.buf)+len(c.head) > c.lineLimit() {
					return c.goodUpTo(i) // longer than net/http reads
				}
				return -1
			}
			line := b[i : i+j+1]
			i += j + 1
			if !c.line(line) {
				return c.goodUpTo(i - len(line))
			}
		}
	}
	return -1
}

// goodUpTo returns the offset of a violation, never negative.
func (c *strictConn) goodUpTo(i int) int {
	c.buf = nil
	if i < 0 {
		return 0
	}
	return i
}

// line handles one complete line (ending in '\n') in the head, chunk-line or
// trailer state and reports whether the framing is still acceptable.
func (c *strictConn) line(part []byte) bool {
	full := part
	if len(c.buf) > 0 {
		full = append(c.buf, part...)
		c.buf = c.buf[:0]
	}
	switch c.state {
	case sChunkLine:
		if len(full) > maxChunkLine {
			return false
		}
		if !bytes.HasSuffix(full, []byte("\r\n")) {
			return false // bare LF ends a chunk size
		}
		size := full[:len(full)-2]
		if k := bytes.IndexByte(size, ';'); k >= 0 {
			size = size[:k] // chunk extensions are ignored
		}
		size = bytes.TrimRight(size, " \t")
		n, err := strconv.ParseInt(string(size), 16, 64)
		if err != nil || n < 0 || len(size) == 0 {
			return false
		}
		if n == 0 {
			c.state = sTrailer
		} else {
			c.state, c.left = sChunkData, n
		}
		return true
	case sTrailer:
		if len(full) > c.limit {
			return false
		}
		if string(full) == "\r\n" {
			c.state = sHead
		} else if !bytes.HasSuffix(full, []byte("\r\n")) {
			return false
		}
		return true
	}
	// sHead: accumulate until the blank line, then judge the whole head.
	if len(c.head) == 0 {
		if string(full) == "\r\n" || string(full) == "\n" {
			return true // leading empty lines are tolerated, as by net/http
		}
		if bytes.HasPrefix(full, []byte("PRI * HTTP/2.0")) {
			if !c.h2c {
				return false // HTTP/2 is not served here: 400
			}
			c.state = sPass
			return true
		}
	}
	c.head = append(c.head, full...)
	if len(c.head) > c.limit {
		return false // longer than net/http reads (it would answer 431)
	}
	if string(full) != "\r\n" && string(full) != "\n" {
		return true
	}
	ok := c.judge(c.head)
	c.head = c.head[:0] // keep the capacity for the next request
	return ok
}

// judge validates a complete request head and sets up body framing. It
// works on the bytes as they are, without allocating.
func (c *strictConn) judge(head []byte) bool {
	var te, cl []byte
	nTE, nCL := 0, 0
	upgrade, connUpgrade := false, false
	first := true
	var requestLine []byte
	for len(head) > 0 {
		j := bytes.IndexByte(head, '\n')
		line := head[:j+1]
		head = head[j+1:]
		if len(line) < 2 || line[len(line)-2] != '\r' {
			return false // bare LF line ending
		}
		line = line[:len(line)-2]
		if first {
			first, requestLine = false, line
			continue
		}
		if len(line) == 0 {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			return false // obsolete line folding
		}
		k := bytes.IndexByte(line, ':')
		if k <= 0 || bytes.ContainsAny(line[:k], " \t") {
			return false // no colon, or white space before it
		}
		name, value := line[:k], bytes.TrimSpace(line[k+1:])
		switch {
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			te, nTE = value, nTE+1
		case bytes.EqualFold(name, []byte("Content-Length")):
			if nCL > 0 && !bytes.Equal(cl, value) {
				return false // two different lengths
			}
			cl, nCL = value, nCL+1
		case bytes.EqualFold(name, []byte("Upgrade")):
			upgrade = upgrade || len(value) > 0
		case bytes.EqualFold(name, []byte("Connection")):
			connUpgrade = connUpgrade || hasToken(value, "upgrade")
		}
	}
	switch {
	case nTE > 0 && nCL > 0:
		return false // both: the classic smuggling vector
	case nTE > 0:
		if nTE != 1 || !bytes.EqualFold(te, []byte("chunked")) {
			return false // only a single "chunked" is unambiguous
		}
		if !atLeastHTTP11(requestLine) {
			return false // net/http ignores Transfer-Encoding before HTTP/1.1
		}
		c.state = sChunkLine
	case nCL > 0:
		n, ok := parseLength(cl)
		if !ok {
			return false
		}
		if n > 0 {
			c.state, c.left = sBody, n
		}
	}
	// Checking goes on: only a 101 actually sent ends it (Write).
	c.lastUpgrade.Store(upgrade && connUpgrade)
	return true
}

// atLeastHTTP11 reports whether a request line names HTTP/1.1 or a later
// version, as net/http reads the version (exactly "HTTP/d.d").
func atLeastHTTP11(line []byte) bool {
	k := bytes.LastIndexByte(line, ' ')
	v := line[k+1:]
	if len(v) != len("HTTP/1.1") || !bytes.HasPrefix(v, []byte("HTTP/")) || v[6] != '.' {
		return false
	}
	return v[5] > '1' || (v[5] == '1' && v[7] >= '1')
}

// lineLimit bounds the partial line being buffered in the current state.
func (c *strictConn) lineLimit() int {
	if c.state == sChunkLine {
		return maxChunkLine
	}
	return c.limit
}
