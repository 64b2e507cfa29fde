package discovery

import (
	"context"
	"net/http/httptrace"
	"sync/atomic"

	"github.com/hashicorp/consul/api"
)

// blockQuery performs one request of a watch with the given options and
// hands a changed answer on. It returns the index Consul answered with and
// whether the answer differed from the previous one (a real change).
type blockQuery func(client *api.Client, q *api.QueryOptions) (index uint64, changed bool, err error)

// block is the blocking-query loop of one change detector, on a client of
// its own (one connection). onError, if not nil, is called after each
// failed request. block returns when ctx is done.
//
// Only spurious work is rate-limited: the request after an answer that
// changed nothing (an early wake-up, an unrelated index move, the wait
// running out) takes a token; the request after a real change does not, so
// a burst of changes is followed as fast as Consul reports it. Errors back
// off exponentially instead.
//
// An index means something only to the server that issued it. A query that
// blocks on it lands on a new connection when the old one died (Go's
// transport even retries a GET on a new connection by itself), and behind
// a new connection may be an agent restarted empty, whose index is lower:
// it would hold the query until it reaches the old index or the wait runs
// out, minutes during which the gateway misses every change. So a blocking
// query must run on the connection that carried the previous answer; on a
// new one it is abandoned and the watch asks afresh, without blocking.
func (c *Consul) block(ctx context.Context, what string, query blockQuery, onError func()) {
	defer c.forget(what)
	var client *consulClient
	defer func() {
		if client != nil {
			client.closeIdle() // release the watch's connection
		}
	}()
	var (
		bucket    = newTokenBucket(c.opt.Rate, c.opt.Burst)
		loop      blockState
		spurious  bool // the last answer changed nothing
		failures  int
		checkConn = true // false once the server is seen to drop every connection
		afterMove bool   // the last blocking query was abandoned on a new connection
	)
	for {
		if spurious && !bucket.take(ctx) {
			return
		}
		spurious = false
		if client == nil {
			var err error
			if client, err = c.newClient(clientSpec{name: what, maxConns: 1}); err != nil {
				failures++
				if !c.failed(ctx, what, err, failures, onError) {
					return
				}
				continue
			}
		}
		rctx, cancel := context.WithTimeout(ctx, c.timeout)
		var conn connSeen
		if loop.index > 0 && checkConn {
			rctx = httptrace.WithClientTrace(rctx, conn.trace(cancel))
		}
		q := (&api.QueryOptions{WaitIndex: loop.index, WaitTime: c.opt.WaitTime}).WithContext(rctx)
		next, changed, err := query(client.api, q)
		cancel()
		if ctx.Err() != nil {
			return // shutting down; not an error
		}
		if conn.fresh.Load() {
			if afterMove && !conn.reused.Load() {
				// Not even the connection of the fresh answer was kept:
				// the server closes every connection. Checking would
				// turn blocking into polling.
				checkConn = false
				c.log.Warn("consul closes its connection after every answer; an agent restarted empty may go unnoticed until wait_time runs out", "watch", what)
			}
			afterMove, loop.index = true, 0
			continue
		}
		if conn.reused.Load() {
			afterMove = false
		}
		if err != nil {
			failures++
			// The server that answers next may not be the one that issued
			// index: its first answer must not block.
			loop.index = 0
			if !c.failed(ctx, what, err, failures, onError) {
				return
			}
			continue
		}
		failures = 0
		c.ok(what)
		loop.answered(next)
		spurious = !changed
	}
}

// blockState is the index rule of a blocking loop.
type blockState struct {
	index uint64 // 0: the next query answers at once
}

// answered moves the state to the index of a successful answer: never 0
// (blocking on 0 answers at once, forever); backwards (the server's state
// was reset) starts over without blocking; the same index (the wait ran
// out) blocks again.
func (s *blockState) answered(next uint64) {
	if next == 0 {
		next = 1
	}
	switch {
	case next < s.index:
		s.index = 0
	case next > s.index:
		s.index = next
	}
}

// failed records a failed request and waits out the back-off; it reports
// false if ctx ended meanwhile.
func (c *Consul) failed(ctx context.Context, what string, err error, failures int, onError func()) bool {
	c.fail(what, err)
	if onError != nil {
		onError()
	}
	return sleep(ctx, backoff(c.opt.MinBackoff, c.opt.MaxBackoff, failures))
}

// connSeen records, through httptrace, the connections one request used.
type connSeen struct{ reused, fresh atomic.Bool }

// trace marks the connections and calls abort on a new one.
func (s *connSeen) trace(abort func()) *httptrace.ClientTrace {
	return &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		if info.Reused {
			s.reused.Store(true)
			return
		}
		s.fresh.Store(true)
		abort()
	}}
}
