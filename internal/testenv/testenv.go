// Package testenv starts real external components (Consul, Jaeger) and
// project binaries for integration tests, and stops them by PID.
package testenv

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RepoRoot returns the module root (the directory holding go.mod).
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var toolMu sync.Mutex

// Tool returns the path of an external tool (consul, jaeger): a binary on
// PATH, else the one in the tools cache, building it there on first use via
// scripts/tools.sh. With SWITCHYARD_SKIP_<NAME>=1 the test is skipped.
func Tool(t testing.TB, name string) string {
	t.Helper()
	if os.Getenv("SWITCHYARD_SKIP_"+strings.ToUpper(name)) == "1" {
		t.Skipf("SWITCHYARD_SKIP_%s=1", strings.ToUpper(name))
	}
	toolMu.Lock()
	defer toolMu.Unlock()
	cmd := exec.Command("bash", filepath.Join(RepoRoot(t), "scripts", "tools.sh"), name)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("providing %s: %v", name, err)
	}
	path := strings.TrimSpace(out.String())
	if path == "" {
		t.Fatalf("providing %s: scripts/tools.sh printed no path", name)
	}
	return path
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Process is a child process started by a test.
type Process struct {
	Cmd  *exec.Cmd
	Log  *SyncBuffer
	done chan struct{}
}

// Start runs name with args and registers a cleanup that kills it (and its
// process group) by PID and waits for it. Output is kept for failure logs.
func Start(t testing.TB, env []string, name string, args ...string) *Process {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	buf := &SyncBuffer{}
	cmd.Stdout, cmd.Stderr = buf, buf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &Process{Cmd: cmd, Log: buf, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("output of %s:\n%s", filepath.Base(name), Tail(buf.String(), 4000))
		}
	})
	return p
}

// Kill stops the process group with SIGKILL and waits for the process.
func (p *Process) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM and waits up to timeout, then kills.
func (p *Process) Stop(timeout time.Duration) {
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.Kill()
	}
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// BuildBinary compiles a package of this module (e.g. "./cmd/demo-backend")
// into a temp dir once per test binary and returns its path.
func BuildBinary(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[pkg]; ok {
		return p
	}
	dir, err := os.MkdirTemp("", "switchyard-bin-")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = RepoRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	built[pkg] = out
	return out
}

var (
	buildMu sync.Mutex
	built   = map[string]string{}
)

// SyncBuffer is a bytes.Buffer safe for concurrent writes and reads, for
// logs written by one goroutine and read by a test.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
