package discovery

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/consul/api"
)

// This file holds the connection budget: every request the Consul source
// makes goes through one of three clients whose transports dial through a
// single connBudget, so the source never holds more than MaxConnections TCP
// connections to the agent, whatever the size of the catalog.
//
//	catalog detector   1 connection  (a blocking query of its own)
//	checks detector    1 connection  (a blocking query of its own)
//	fetch workers      the rest      (short requests, one at a time each
//	                                  over HTTP/1.1; multiplexed over HTTP/2)
//
// The transports cap themselves with MaxConnsPerHost; the budget caps the
// dialer too, so a transport that briefly holds a closing connection and a
// new one cannot push the total over.

// ConsulMeter counts what the source exchanges with the agent, at the
// dialer: bytes on the wire (headers included, TLS records when HTTPS) and
// requests sent. Safe for concurrent use; the zero value is ready.
type ConsulMeter struct {
	Requests  atomic.Int64
	BytesOut  atomic.Int64 // written to the agent
	BytesIn   atomic.Int64 // read from the agent
	Dials     atomic.Int64
	OpenConns atomic.Int64 // connections currently open
}

// connBudget hands out at most cap(slots) connections at a time; closing a
// connection returns its slot.
type connBudget struct {
	slots chan struct{}
	meter *ConsulMeter // nil: not metered
}

func newConnBudget(n int, meter *ConsulMeter) *connBudget {
	return &connBudget{slots: make(chan struct{}, n), meter: meter}
}

// wrap returns a DialContext that waits for a free slot (or ctx) before
// dialing with dial.
func (b *connBudget) wrap(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		select {
		case b.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for a connection to consul within max_connections: %w", ctx.Err())
		}
		c, err := dial(ctx, network, addr)
		if err != nil {
			<-b.slots
			return nil, err
		}
		if b.meter != nil {
			b.meter.Dials.Add(1)
			b.meter.OpenConns.Add(1)
		}
		bc := &budgetConn{Conn: c, meter: b.meter}
		bc.release = sync.OnceFunc(func() {
			<-b.slots
			if b.meter != nil {
				b.meter.OpenConns.Add(-1)
			}
		})
		return bc, nil
	}
}

// budgetConn gives its slot back on Close and meters its bytes.
type budgetConn struct {
	net.Conn
	meter   *ConsulMeter
	release func()
}

func (c *budgetConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.meter != nil && n > 0 {
		c.meter.BytesIn.Add(int64(n))
	}
	return n, err
}

func (c *budgetConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if c.meter != nil && n > 0 {
		c.meter.BytesOut.Add(int64(n))
	}
	return n, err
}

func (c *budgetConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

// clientSpec describes one client of the source.
type clientSpec struct {
	name     string // for the protocol log line
	maxConns int
}

// consulClient is one API client with its transport.
type consulClient struct {
	api       *api.Client
	closeIdle func()
	rt        *meteredTransport
}

// multiplexed reports whether the agent answered over HTTP/2, where
// concurrent requests share a connection.
func (c *consulClient) multiplexed() bool { return c.rt.h2.Load() }

// newClient builds a client whose transport keeps at most spec.maxConns
// connections, dials through the budget, and speaks HTTP/2 when the agent
// offers it over TLS (the api package leaves HTTP/2 off once it sets its own
// TLS configuration; ForceAttemptHTTP2 turns it back on). The first answer
// logs the protocol in use.
func (c *Consul) newClient(spec clientSpec) (*consulClient, error) {
	conf := *c.opt.Config
	base := conf.Transport
	if base == nil {
		base = api.DefaultConfig().Transport
	}
	tr := base.Clone()
	tr.MaxConnsPerHost = spec.maxConns
	tr.MaxIdleConnsPerHost = spec.maxConns
	tr.ForceAttemptHTTP2 = true
	var d net.Dialer
	dial := d.DialContext
	if path, ok := strings.CutPrefix(conf.Address, "unix://"); ok {
		// api.NewClient would replace the transport for a socket; dial it
		// from this one instead.
		dial = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		}
		conf.Address, conf.Scheme = "localhost", "http"
	}
	tr.DialContext = c.budget.wrap(dial)
	// TLS comes from conf.TLSConfig (CA, client certificate, server
	// name). api.NewHttpClient reads it only into a transport without a
	// TLS configuration, and the transport of api.DefaultConfig has one.
	tr.TLSClientConfig = nil
	hc, err := api.NewHttpClient(tr, conf.TLSConfig)
	if err != nil {
		return nil, fmt.Errorf("consul client: %w", err)
	}
	// Every request also carries a context deadline; this is the backstop.
	hc.Timeout = c.timeout
	mt := &meteredTransport{rt: tr, meter: c.opt.Meter, log: c.log, name: spec.name}
	hc.Transport = mt
	conf.Transport, conf.HttpClient = tr, hc
	client, err := api.NewClient(&conf)
	if err != nil {
		return nil, fmt.Errorf("consul client: %w", err)
	}
	return &consulClient{api: client, closeIdle: tr.CloseIdleConnections, rt: mt}, nil
}

// meteredTransport counts requests and logs, once, the protocol the agent
// answered with (HTTP/2.0 over TLS when the agent allows it).
type meteredTransport struct {
	rt     http.RoundTripper
	meter  *ConsulMeter
	log    *slog.Logger
	name   string
	logged atomic.Bool
	h2     atomic.Bool // an answer came over HTTP/2
}

func (t *meteredTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.meter != nil {
		t.meter.Requests.Add(1)
	}
	resp, err := t.rt.RoundTrip(r)
	if err == nil && resp.ProtoMajor == 2 {
		t.h2.Store(true)
	}
	if err == nil && !t.logged.Swap(true) {
		t.log.Info("consul connection", "client", t.name, "protocol", resp.Proto, "tls", tlsVersion(resp.TLS))
	}
	if sink, ok := r.Context().Value(rawBodyKey{}).(*rawBody); ok && err == nil && resp.StatusCode == http.StatusOK {
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		sink.body, sink.read = body, true
		resp.Body = io.NopCloser(strings.NewReader("null"))
	}
	return resp, err
}

// rawBody, in a request's context, receives the body of a successful
// answer as bytes, and the api package's JSON decoder gets "null" instead:
// the caller decodes the body itself (consul_ui.go). The decoder scans
// every byte of a body to find its end even for a json.Unmarshaler, which
// at 1,000 services took as long as decoding it outright.
type rawBody struct {
	body []byte
	read bool
}

type rawBodyKey struct{}

func tlsVersion(st *tls.ConnectionState) string {
	if st == nil {
		return "none"
	}
	return tls.VersionName(st.Version)
}
