package testenv

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// consulVersion is the version scripts/tools.sh builds; keep them in step.
const consulVersion = "v1.14.11"

// ConsulNode is the node name of every agent StartConsul runs, so instance
// IDs in tests read "switchyard-test/<service-id>".
const ConsulNode = "switchyard-test"

// Consul is a real `consul agent -dev` started by a test: a single server
// holding its state in memory, listening on 127.0.0.1 only, with DNS and
// gRPC off. Safe for concurrent use.
type Consul struct {
	// Addr is the HTTP API address, host:port. It stays the same across
	// Restart.
	Addr string
	// HTTPSAddr and CAFile are set by StartConsulTLS: the HTTPS API
	// address and the CA that signed the agent's certificate.
	HTTPSAddr, CAFile string

	bin  string
	args []string

	mu   sync.Mutex
	proc *Process
}

// StartConsul starts a dev agent on free ports and waits until it has
// elected itself leader and registered its node. It is killed by PID when
// the test ends. Skipped with -short or SWITCHYARD_SKIP_CONSUL=1.
func StartConsul(t testing.TB) *Consul {
	t.Helper()
	return startConsul(t, nil)
}

// startConsul starts a dev agent; tls, when not nil, adds the HTTPS
// listener: it returns the extra arguments for the given HTTPS port.
func startConsul(t testing.TB, tls func(httpsPort int) []string) *Consul {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a real Consul agent; skipped with -short")
	}
	bin := consulBinary(t)
	var lastErr error
	// A free port can be taken between FreePort and the agent's bind;
	// then the agent exits and the next attempt uses other ports.
	for attempt := 0; attempt < 3; attempt++ {
		httpPort, server, lan, wan := FreePort(t), FreePort(t), FreePort(t), FreePort(t)
		c := &Consul{
			Addr: "127.0.0.1:" + strconv.Itoa(httpPort),
			bin:  bin,
			args: []string{
				"agent", "-dev",
				"-node=" + ConsulNode,
				"-bind=127.0.0.1", "-client=127.0.0.1",
				"-http-port=" + strconv.Itoa(httpPort),
				"-server-port=" + strconv.Itoa(server),
				"-serf-lan-port=" + strconv.Itoa(lan),
				"-serf-wan-port=" + strconv.Itoa(wan),
				"-dns-port=-1", "-grpc-port=-1", "-grpc-tls-port=-1", "-https-port=-1",
				"-log-level=warn",
			},
		}
		if tls != nil {
			https := FreePort(t)
			c.HTTPSAddr = "127.0.0.1:" + strconv.Itoa(https)
			c.args = slices.DeleteFunc(c.args, func(a string) bool { return a == "-https-port=-1" })
			c.args = append(c.args, tls(https)...)
		}
		if lastErr = c.start(t); lastErr == nil {
			return c
		}
		t.Logf("consul agent did not come up (%v); retrying on other ports", lastErr)
	}
	t.Fatalf("starting consul: %v", lastErr)
	return nil
}

// consulBinary returns the consul binary, saying so loudly when it has to be
// built first: that takes minutes and go test shows nothing meanwhile.
func consulBinary(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("consul"); err != nil && os.Getenv("SWITCHYARD_SKIP_CONSUL") != "1" {
		if _, err := os.Stat(cachedConsul()); err != nil {
			msg := fmt.Sprintf("testenv: consul %s is not on PATH nor in the tools cache; building it now with scripts/tools.sh "+
				"(once per machine, about 10 minutes on 2 cores; run `make tools` beforehand to keep it out of go test's -timeout)", consulVersion)
			fmt.Fprintln(os.Stderr, msg)
			t.Log(msg)
		}
	}
	return Tool(t, "consul")
}

// cachedConsul is where scripts/tools.sh keeps its consul build.
func cachedConsul() string {
	dir := os.Getenv("SWITCHYARD_TOOLS_DIR")
	if dir == "" {
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			home, _ := os.UserHomeDir()
			cache = filepath.Join(home, ".cache")
		}
		dir = filepath.Join(cache, "switchyard", "tools")
	}
	v := os.Getenv("CONSUL_VERSION")
	if v == "" {
		v = consulVersion
	}
	return filepath.Join(dir, "consul-"+v, "consul")
}

// start runs the agent and waits until it serves; it returns an error if
// the agent exited or did not become ready in time.
func (c *Consul) start(t testing.TB) error {
	t.Helper()
	p := Start(t, nil, c.bin, c.args...)
	c.mu.Lock()
	c.proc = p
	c.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for !c.ready() {
		select {
		case <-p.Done():
			return fmt.Errorf("agent exited: %s", Tail(p.Log.String(), 2000))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.Kill()
			return fmt.Errorf("no leader after 30s: %s", Tail(p.Log.String(), 2000))
		}
	}
	return nil
}

// ready reports whether the agent has a leader and its own node is in the
// catalog, so registrations are synced at once.
func (c *Consul) ready() bool {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(path string) string {
		resp, err := client.Get("http://" + c.Addr + path)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	if l := get("/v1/status/leader"); l == "" || l == `""` {
		return false
	}
	return strings.Contains(get("/v1/catalog/nodes"), `"`+ConsulNode+`"`)
}

// Client returns an API client for the agent (no pooling of idle
// connections, so a killed agent leaves nothing behind).
func (c *Consul) Client(t testing.TB) *api.Client {
	t.Helper()
	conf := api.DefaultNonPooledConfig()
	conf.Address = c.Addr
	conf.Token = ""
	client, err := api.NewClient(conf)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// Kill stops the agent with SIGKILL, as a crash would, and waits for it.
func (c *Consul) Kill() {
	c.mu.Lock()
	p := c.proc
	c.mu.Unlock()
	if p != nil {
		p.Kill()
	}
}

// Restart kills the agent if it runs and starts a new, empty one on the same
// ports: its Raft index starts low again, as after losing its data.
func (c *Consul) Restart(t testing.TB) {
	t.Helper()
	c.Kill()
	var err error
	// The old sockets are gone with the process, but give the kernel a few
	// tries in case a port is briefly unavailable.
	for attempt := 0; attempt < 3; attempt++ {
		if err = c.start(t); err == nil {
			return
		}
	}
	t.Fatalf("restarting consul on %s: %v", c.Addr, err)
}
