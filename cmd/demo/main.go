// Command demo runs the docker-compose.yml topology as local processes, for
// a machine without Docker (`make demo`): Consul, Jaeger, three demo
// backends that register themselves in Consul, and the gateway, on the
// ports the compose file publishes (a taken port is replaced by a free one,
// and the URLs printed say so). Type "stop backend-2" or "start backend-2"
// to do what `docker compose stop|start backend-2` does. Ctrl-C stops
// everything.
package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/switchyard-gw/switchyard/internal/twin"
)

func main() {
	os.Exit(run())
}

func run() int {
	// The twin's processes run in process groups of their own, so a
	// Ctrl-C reaches only this program, which stops them by PID. Every
	// further signal is caught too: stopping is bounded, and exiting
	// early would leave processes behind.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-sigs
		cancel()
	}()

	fmt.Println("Starting the docker-compose.yml topology as processes (no Docker needed)...")
	topo, err := twin.Start(ctx, twin.Options{PublishedPorts: true, Log: os.Stdout})
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	guide(os.Stdout, topo)

	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	code := 0
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case name := <-topo.Exited():
			fmt.Fprintf(os.Stderr, "demo: %s exited on its own; the end of %s:\n%s\n", name, topo.Service(name).LogFile, topo.LogTail(name, 3000))
			code = 1
			break loop
		case line := <-lines:
			command(ctx, topo, line)
		}
	}
	fmt.Println("\nStopping everything (each process gets SIGTERM, then SIGKILL after 10 s)...")
	if err := topo.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		code = 1
	}
	return code
}

// command runs one line typed by the person.
func command(ctx context.Context, topo *twin.Topology, line string) {
	verb, name, _ := strings.Cut(strings.TrimSpace(line), " ")
	name = strings.TrimSpace(name)
	var err error
	switch verb {
	case "":
		return
	case "stop":
		if err = topo.StopService(name); err == nil {
			fmt.Printf("%s stopped\n", name)
		}
	case "start":
		if err = topo.StartService(ctx, name); err == nil {
			fmt.Printf("%s started\n", name)
		}
	case "ps":
		for _, s := range topo.Services() {
			state := "stopped"
			if pid := s.PID(); pid != 0 {
				state = fmt.Sprintf("pid %d", pid)
			}
			fmt.Printf("  %-11s %s\n", s.Name, state)
		}
	case "ports":
		topo.WriteMapping(os.Stdout)
	default:
		fmt.Println("commands: stop NAME, start NAME, ps, ports (Ctrl-C stops everything)")
	}
	if err != nil {
		fmt.Println("demo:", err)
	}
}

// guide prints where everything is, with the URLs of docs/try-it.md on
// the ports actually used.
func guide(w io.Writer, topo *twin.Topology) {
	url := func(service string, port int, path string) string {
		addr := topo.Addr(service, port)
		if addr == "" {
			return "(not in this compose file)"
		}
		_, p, _ := net.SplitHostPort(addr)
		return "http://localhost:" + p + path
	}
	hostPort := func(service string, port int) string {
		_, p, _ := net.SplitHostPort(topo.Addr(service, port))
		return "localhost:" + p
	}
	gw := hostPort("switchyard", 8080)
	fmt.Fprintf(w, `
Switchyard is up, with Consul, Jaeger and three demo backends, as processes.

  gateway     %-30s try: for i in 1 2 3 4 5 6; do curl -s %s/; done
  dashboard   %-30s every instance, in or out of rotation and why
  as JSON     %s
  Consul UI   %s
  Jaeger      %-30s service "switchyard": each request and the instance it went to

Make backend-2 unhealthy, then heal it:

  curl -X POST '%s/admin/health?status=500'
  curl -X POST '%s/admin/health?status=200'

Stop a backend the way `+"`docker compose stop backend-2`"+` would (it deregisters from
Consul and leaves rotation at once), and start it again: type here

  stop backend-2
  start backend-2

(also: ps, ports). Logs of every process: %s
Ctrl-C stops everything.

`, url("switchyard", 8080, "/"), gw,
		url("switchyard", 9901, "/"),
		url("switchyard", 9901, "/api/v1/services"),
		url("consul", 8500, "/ui"),
		url("jaeger", 16686, "/"),
		hostPort("backend-2", 9000), hostPort("backend-2", 9000),
		filepath.Join(topo.Dir, "*.log"))
}
