package gateway

import (
	"io"
	"net/http"
	"time"
)

// clientBody wraps the client's request body to enforce the size limit and
// the read deadline, and to remember a read error as the client's fault.
// Read is called from the transport's writer goroutine; st.bodyErr is read
// by the error handler after RoundTrip returned, which orders the two.
type clientBody struct {
	rc       io.ReadCloser
	st       *reqState
	left     int64 // bytes still allowed; <0 means no limit
	ctl      *http.ResponseController
	deadline bool
}

func newClientBody(w http.ResponseWriter, rc io.ReadCloser, st *reqState, max int64, timeout time.Duration) *clientBody {
	b := &clientBody{rc: rc, st: st, left: -1}
	if max > 0 {
		b.left = max
	}
	if timeout > 0 {
		b.ctl = http.NewResponseController(w)
		b.deadline = b.ctl.SetReadDeadline(time.Now().Add(timeout)) == nil
	}
	return b
}

func (b *clientBody) Read(p []byte) (int, error) {
	if b.left == 0 {
		// Probe for one more byte: exactly max bytes is fine.
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			return 0, b.fail(errBodyTooLarge)
		}
		return 0, b.done(err)
	}
	if b.left > 0 && int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	if b.left > 0 {
		b.left -= int64(n)
	}
	return n, b.done(err)
}

func (b *clientBody) done(err error) error {
	switch {
	case err == nil:
	case err == io.EOF:
		if b.deadline {
			// Body read: lift the deadline so the response may stream.
			_ = b.ctl.SetReadDeadline(time.Time{})
			b.deadline = false
		}
	default:
		return b.fail(err)
	}
	return err
}

func (b *clientBody) fail(err error) error {
	b.st.bodyErr = err
	return err
}

func (b *clientBody) Close() error { return b.rc.Close() }
