package soak

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/hashicorp/consul/api"
)

// instance is one backend: an HTTP server on loopback registered in Consul.
type instance struct {
	id   string
	addr string
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

func startInstance(id, addr string) (*instance, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	in := &instance{id: id, addr: ln.Addr().String(), ln: ln, done: make(chan struct{})}
	in.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			io.WriteString(w, id)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() { in.srv.Serve(ln); close(in.done) }()
	return in, nil
}

// crash closes the listener and every connection at once, as a killed
// process would.
func (in *instance) crash() {
	in.srv.Close()
	<-in.done
}

func (in *instance) register(c *api.Client, service, prefix string) error {
	host, port, _ := net.SplitHostPort(in.addr)
	p, _ := strconv.Atoi(port)
	return c.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: in.id, Name: service, Address: host, Port: p,
		Tags: []string{prefix + ".enable=true", prefix + ".path=/"},
		Check: &api.AgentServiceCheck{
			HTTP: "http://" + in.addr + "/health", Interval: "1s", Timeout: "1s",
			Status: api.HealthPassing,
		},
	})
}
