package gateway

import (
	"errors"
	"io"
	"net/http"
	"sync"
)

// replayLimit is how much of a request body is kept so that an HTTP/2
// stream the upstream refused can be sent again (see withReplay): enough
// for the common gRPC unary call, small enough to keep per request.
const replayLimit = 64 << 10

var errNoReplay = errors.New("request body too long to send again")

// withReplay lets req's body be sent again, and returns what records it.
// net/http's HTTP/2 transport sends req again on a new stream when the
// upstream did not process the first one: a stream refused
// (REFUSED_STREAM, as an upstream does to streams beyond its
// SETTINGS_MAX_CONCURRENT_STREAMS, which a new connection learns only
// after its first requests went out) or one above the last stream ID of a
// GOAWAY. It re-sends only in those cases, and only through
// Request.GetBody; the first replayLimit bytes of the body are kept for
// it. A longer body is not replayed and such a failure ends the request.
//
// The gateway's own retries on another instance (retryTransport) use the
// same recording for a gRPC call the service marks idempotent, while
// kept reports it whole; for any other request they still require that
// nothing was read from the body. Nil when req has no body.
func withReplay(req *http.Request) *replay {
	if req.Body == nil || req.Body == http.NoBody {
		return nil
	}
	r := &replay{src: req.Body}
	req.Body = &replayReader{r: r}
	req.GetBody = func() (io.ReadCloser, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.over {
			return nil, errNoReplay
		}
		return &replayReader{r: r}, nil
	}
	return r
}

// kept reports whether everything read from the body so far is recorded,
// so that GetBody gives a reader of the whole body.
func (r *replay) kept() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.over
}

// replay records what is read from src, up to replayLimit, for every
// replayReader of one request. A reader of an abandoned stream may still
// be blocked in src.Read: srcMu serialises reads of src, so what it gets
// is recorded for the new stream's reader, which meanwhile replays the
// recording without waiting for it.
type replay struct {
	srcMu sync.Mutex // held across src.Read
	src   io.ReadCloser

	mu   sync.Mutex // guards the fields below
	rec  []byte
	read int   // bytes read from src in all
	over bool  // read exceeds replayLimit: rec is dropped
	err  error // src's final error (io.EOF at the end)
}

// replayReader is one stream's view of the body: the recording first,
// then src. Closing it leaves src open (the server closes the client's
// body when the request ends).
type replayReader struct {
	r   *replay
	off int // owned by the one goroutine reading this stream's body
}

func (rr *replayReader) Read(p []byte) (int, error) {
	if n, ok, err := rr.fromRecord(p); ok {
		return n, err
	}
	r := rr.r
	r.srcMu.Lock()
	defer r.srcMu.Unlock()
	if n, ok, err := rr.fromRecord(p); ok { // another reader got there first
		return n, err
	}
	n, err := r.src.Read(p)
	r.mu.Lock()
	defer r.mu.Unlock()
	if n > 0 {
		r.read += n
		rr.off += n
		if !r.over && r.read <= replayLimit {
			r.rec = append(r.rec, p[:n]...)
		} else {
			r.over, r.rec = true, nil
		}
	}
	if err != nil {
		r.err = err
	}
	return n, err
}

// fromRecord serves p from what was already read from src; ok is false
// when this reader has seen all of it and src must be read.
func (rr *replayReader) fromRecord(p []byte) (int, bool, error) {
	r := rr.r
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case rr.off < r.read && r.over:
		return 0, true, errNoReplay // an earlier stream consumed what cannot be given back
	case rr.off < r.read:
		n := copy(p, r.rec[rr.off:])
		rr.off += n
		return n, true, nil
	case r.err != nil:
		return 0, true, r.err
	}
	return 0, false, nil
}

func (rr *replayReader) Close() error { return nil }
