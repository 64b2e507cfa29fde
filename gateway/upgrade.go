package gateway

import (
	"bufio"
	"net"
	"net/http"

	"github.com/switchyard-gw/switchyard/h1"
)

// upgradeWriter marks the connection a 101 goes out on, so that the
// listener's framing check (h1.StrictListener) stops checking once it is
// sent, and not before: ReverseProxy hijacks the connection only to write
// the upstream's 101.
type upgradeWriter struct{ http.ResponseWriter }

func (w upgradeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		h1.SwitchingProtocols(c)
	}
	return c, brw, err
}

// Unwrap lets http.ResponseController reach the writer's other methods.
func (w upgradeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
