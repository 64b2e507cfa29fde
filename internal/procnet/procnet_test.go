package procnet

import (
	"net"
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/internal/testenv"
)

func TestEstablishedCountsTheConnectionsToAListenerAsTheKernelSeesThem(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if n, err := Established(ln.Addr().String()); err != nil {
		t.Skipf("cannot count connections from the OS: %v", err)
	} else if n != 0 {
		t.Fatalf("%d established before any dial, want 0", n)
	}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 3 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	testenv.WaitFor(t, 5*time.Second, "3 established connections", func() bool {
		n, err := Established(ln.Addr().String())
		return err == nil && n == 3
	})
}

func TestEstablishedRefusesWhatIsNotAnIPv4Address(t *testing.T) {
	for _, addr := range []string{"no-port", "[::1]:80", "localhost:80", "127.0.0.1:http"} {
		if _, err := Established(addr); err == nil {
			t.Errorf("Established(%q) counted, want an error", addr)
		}
	}
}
