package h1

import (
	"net"
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/internal/testenv"
)

func loopbackPair(t testing.TB) (client, server net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func TestIdlePeekSeesDataAndEOFWithoutConsumingThem(t *testing.T) {
	c, s := loopbackPair(t)
	p := newIdlePeek(c)
	if !p.quietNow() {
		t.Fatal("a connection nothing was sent on is not quiet")
	}
	s.Write([]byte("x"))
	buf := make([]byte, 1)
	untilNotQuiet(t, p) // the byte is on its way over loopback
	if n, err := c.Read(buf); n != 1 || err != nil || buf[0] != 'x' {
		t.Fatalf("the peeked byte was consumed: %d %v %q", n, err, buf)
	}
	if !p.quietNow() {
		t.Fatal("quiet again once the byte was read")
	}
	s.Close()
	untilNotQuiet(t, p) // the FIN is on its way
	if p.quietNow() {
		t.Fatal("an EOF left unread must keep the connection from being quiet")
	}
}

func untilNotQuiet(t *testing.T, p *idlePeek) {
	t.Helper()
	testenv.WaitFor(t, 5*time.Second, "the peek to see what arrived", func() bool { return !p.quietNow() })
}

// BenchmarkIdlePeek is the cost added to taking a pooled connection.
func BenchmarkIdlePeek(b *testing.B) {
	c, _ := loopbackPair(b)
	p := newIdlePeek(c)
	b.ReportAllocs()
	for b.Loop() {
		if !p.quietNow() {
			b.Fatal("not quiet")
		}
	}
}
