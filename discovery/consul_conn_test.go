package discovery

import (
	"context"
	"net"
	"testing"
	"time"
)

// TestConnBudgetCapsTheDialer checks the dialer-level cap under the
// transports' MaxConnsPerHost: a dial beyond the budget waits until a
// connection closes, gives up with its context, and bytes are metered.
func TestConnBudgetCapsTheDialer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); c.Write([]byte("hello")); c.Read(make([]byte, 1)) }()
		}
	}()
	meter := &ConsulMeter{}
	b := newConnBudget(2, meter)
	var d net.Dialer
	dial := b.wrap(d.DialContext)
	ctx := context.Background()
	c1, err := dial(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c2, err := dial(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if n := meter.OpenConns.Load(); n != 2 {
		t.Errorf("open connections = %d, want 2", n)
	}

	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if c, err := dial(short, "tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Fatal("a third connection was dialed with a budget of 2")
	}

	third := make(chan error, 1)
	go func() {
		c, err := dial(ctx, "tcp", ln.Addr().String())
		if err == nil {
			c.Close()
		}
		third <- err
	}()
	buf := make([]byte, 5)
	if _, err := c1.Read(buf); err != nil {
		t.Fatal(err)
	}
	c1.Close()
	c1.Close() // a second Close must not free a second slot
	select {
	case err := <-third:
		if err != nil {
			t.Fatalf("dial after a connection closed: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a dial waiting for the budget was not let through when a connection closed")
	}
	c2.Close()
	if n := meter.OpenConns.Load(); n != 0 {
		t.Errorf("open connections after closing all = %d, want 0", n)
	}
	if meter.BytesIn.Load() != 5 || meter.Dials.Load() != 3 {
		t.Errorf("metered %d bytes in over %d dials, want 5 over 3", meter.BytesIn.Load(), meter.Dials.Load())
	}
}
