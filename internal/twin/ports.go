package twin

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// loopback is where every process of the twin listens and is reached:
// the twin's stand-in for every compose host name.
const loopback = "127.0.0.1"

// An Endpoint is a port of a compose service as the compose network names
// it: backend-1:9000 is port 9000 of service backend-1.
type Endpoint struct {
	Service string
	Port    int
}

func (e Endpoint) String() string { return e.Service + ":" + strconv.Itoa(e.Port) }

// A PortMapping says where the twin serves one Endpoint: 127.0.0.1:HostPort.
type PortMapping struct {
	Endpoint
	HostPort int
	// Published is the host port the compose file publishes the endpoint
	// on, 0 if it publishes none.
	Published int
	// Role says what listens there, in words.
	Role string
}

// Addr returns the endpoint's twin address, 127.0.0.1:HostPort.
func (m PortMapping) Addr() string { return net.JoinHostPort(loopback, strconv.Itoa(m.HostPort)) }

// internalPorts are the ports a program listens on inside its container
// without the compose file naming them. The twin gives each a port of its
// own as well, so that nothing it starts uses a default port.
var internalPorts = map[string][]PortMapping{
	programConsul: {
		{Endpoint: Endpoint{Port: 8500}, Role: "Consul HTTP API and UI"},
		{Endpoint: Endpoint{Port: 8300}, Role: "Consul server RPC"},
		{Endpoint: Endpoint{Port: 8301}, Role: "Consul Serf LAN"},
		{Endpoint: Endpoint{Port: 8302}, Role: "Consul Serf WAN"},
	},
	programJaeger: {
		{Endpoint: Endpoint{Port: 16686}, Role: "Jaeger UI and query API"},
		{Endpoint: Endpoint{Port: 16685}, Role: "Jaeger query gRPC"},
		{Endpoint: Endpoint{Port: 4317}, Role: "OTLP gRPC receiver"},
		{Endpoint: Endpoint{Port: 4318}, Role: "OTLP HTTP receiver"},
		{Endpoint: Endpoint{Port: 14269}, Role: "Jaeger health check"},
	},
}

// addrRef matches host:port inside an argument or value, with or without
// a scheme in front ("consul:8500", "http://jaeger:4317/v1/traces",
// "0.0.0.0:9000"). A match always starts at the beginning of a run of host
// characters, so "x.consul:8500" is host "x.consul", not "consul".
var addrRef = regexp.MustCompile(`([A-Za-z0-9][A-Za-z0-9._-]*):([0-9]{1,5})\b`)

// rewrite maps every compose address in s to its twin address, as seen
// from service self: "<service>:<port>" names port of that service, and
// "0.0.0.0:<port>" (listen on every interface) a port of self. A bare
// "0.0.0.0" (Consul's -client) becomes the loopback address. Other host
// names are left alone. lookup returns the host port of an endpoint; if
// it is nil, rewrite only reports the endpoints through found.
func rewrite(s, self string, services map[string]bool, lookup func(Endpoint) int, found func(Endpoint)) string {
	if s == "0.0.0.0" {
		return loopback
	}
	var b strings.Builder
	last := 0
	for _, m := range addrRef.FindAllStringSubmatchIndex(s, -1) {
		host, portStr := s[m[2]:m[3]], s[m[4]:m[5]]
		port, err := strconv.Atoi(portStr)
		if err != nil || port < 1 || port > 65535 {
			continue
		}
		var ep Endpoint
		switch {
		case services[host]:
			ep = Endpoint{Service: host, Port: port}
		case host == "0.0.0.0":
			ep = Endpoint{Service: self, Port: port}
		default:
			continue
		}
		if found != nil {
			found(ep)
		}
		if lookup == nil {
			continue
		}
		b.WriteString(s[last:m[0]])
		b.WriteString(net.JoinHostPort(loopback, strconv.Itoa(lookup(ep))))
		last = m[1]
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// planPorts lists every endpoint the topology needs: the internal ports of
// its programs, every published port, and every address named in a
// command or environment. Sorted by service, then port.
func planPorts(services []*service) []PortMapping {
	names := map[string]bool{}
	for _, s := range services {
		names[s.name] = true
	}
	want := map[Endpoint]*PortMapping{}
	add := func(ep Endpoint, role string) *PortMapping {
		m := want[ep]
		if m == nil {
			m = &PortMapping{Endpoint: ep}
			want[ep] = m
		}
		if m.Role == "" {
			m.Role = role
		}
		return m
	}
	for _, s := range services {
		for _, m := range internalPorts[s.program] {
			add(Endpoint{Service: s.name, Port: m.Port}, m.Role)
		}
		for _, p := range s.published {
			add(Endpoint{Service: s.name, Port: p.container}, "").Published = p.host
		}
	}
	// An endpoint named only here is described by what names it: the
	// flag before it, or the environment variable.
	for _, s := range services {
		for i, a := range s.command {
			role := s.name + " argument"
			if i > 0 && strings.HasPrefix(s.command[i-1], "-") {
				role = s.name + " " + s.command[i-1]
			}
			rewrite(a, s.name, names, nil, func(ep Endpoint) { add(ep, role) })
		}
		for _, k := range slices.Sorted(maps.Keys(s.env)) {
			rewrite(s.env[k], s.name, names, nil, func(ep Endpoint) { add(ep, s.name+" "+k) })
		}
	}
	out := make([]PortMapping, 0, len(want))
	for _, m := range want {
		out = append(out, *m)
	}
	slices.SortFunc(out, func(a, b PortMapping) int {
		if c := strings.Compare(a.Service, b.Service); c != 0 {
			return c
		}
		return a.Port - b.Port
	})
	return out
}

// allocatePorts sets HostPort on every mapping: the published port when
// usePublished is set and that port is free on 127.0.0.1, else a free
// port chosen by the kernel. Every chosen port is held until all are
// chosen, so no two mappings get the same port. It reports published
// ports it could not use through busy.
func allocatePorts(ms []PortMapping, usePublished bool, busy func(m PortMapping, err error)) error {
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	listen := func(port int) (int, error) {
		l, err := net.Listen("tcp", net.JoinHostPort(loopback, strconv.Itoa(port)))
		if err != nil {
			return 0, err
		}
		held = append(held, l)
		return l.Addr().(*net.TCPAddr).Port, nil
	}
	// Published ports first, so a random port cannot take one of them.
	if usePublished {
		for i := range ms {
			if ms[i].Published == 0 {
				continue
			}
			port, err := listen(ms[i].Published)
			if err != nil {
				if busy != nil {
					busy(ms[i], err)
				}
				continue
			}
			ms[i].HostPort = port
		}
	}
	var errs []error
	for i := range ms {
		if ms[i].HostPort != 0 {
			continue
		}
		port, err := listen(0)
		if err != nil {
			errs = append(errs, fmt.Errorf("choosing a port for %s: %w", ms[i].Endpoint, err))
			continue
		}
		ms[i].HostPort = port
	}
	return errors.Join(errs...)
}

// writeMapping prints the mapping as a table.
func writeMapping(w io.Writer, ms []PortMapping) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  compose address\ttwin address\tpublished\twhat")
	for _, m := range ms {
		pub := "-"
		switch {
		case m.Published != 0 && m.Published == m.HostPort:
			pub = strconv.Itoa(m.Published)
		case m.Published != 0:
			pub = strconv.Itoa(m.Published) + " (not used)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", m.Endpoint, m.Addr(), pub, m.Role)
	}
	return tw.Flush()
}
