package h1

import (
	"context"
	"testing"
	"time"
)

type detachKey struct{}

// A dial's context carries the request's values and ends when the request's
// context is cancelled, but is a context of its own, cancelled once the
// dial is done; a context with a deadline, or already cancelled, is
// dialed as it is.
func TestDetachKeepsValuesAndCancellation(t *testing.T) {
	parent, cancelParent := context.WithCancel(context.WithValue(context.Background(), detachKey{}, "v"))
	defer cancelParent()
	dctx, done := detach(parent)
	if dctx == parent {
		t.Fatal("dialed the request's context itself")
	}
	if v := dctx.Value(detachKey{}); v != "v" {
		t.Errorf("value %v, want v", v)
	}
	cancelParent()
	select {
	case <-dctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the request's cancellation did not reach the dial")
	}
	if dctx.Err() != context.Canceled {
		t.Errorf("err %v, want context.Canceled", dctx.Err())
	}
	done()

	other, cancelOther := context.WithCancel(context.Background())
	defer cancelOther()
	dctx, done = detach(other)
	done()
	if dctx.Err() != context.Canceled || other.Err() != nil {
		t.Errorf("after done: dial's err %v, request's %v; want canceled and nil", dctx.Err(), other.Err())
	}

	timed, cancelTimed := context.WithTimeout(context.Background(), time.Hour)
	defer cancelTimed()
	if dctx, done := detach(timed); dctx != timed {
		t.Error("a context with a deadline was replaced")
	} else {
		done()
	}
	if dctx, done := detach(parent); dctx != parent {
		t.Error("a context already cancelled was replaced")
	} else {
		done()
	}
	if dctx, done := detach(context.Background()); dctx != context.Background() {
		t.Error("a context that is never cancelled was replaced")
	} else {
		done()
	}
}
