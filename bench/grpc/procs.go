package main

import (
	"bufio"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one process the benchmark started; it is stopped by its PID.
type proc struct {
	name  string
	cmd   *exec.Cmd
	lines *bufio.Scanner // its stdout, line by line
	log   *lockedWriter
	done  chan struct{}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// procs tracks every process started, so that stopAll can stop them on
// any exit path. Safe for concurrent use.
type procs struct {
	mu   sync.Mutex
	list []*proc
}

// start runs bin with args, pinned to cpu through taskset (which execs
// bin, so the PID is bin's), with its own process group (a Ctrl-C reaches
// only the benchmark, which stops it) and SIGTERM if the benchmark dies.
// Its stderr is kept for error messages; its stdout too unless pipe asks
// for it to be read through p.lines.
func (ps *procs) start(name string, cpu int, pipe bool, env []string, bin string, args ...string) (*proc, error) {
	cmd := exec.Command("taskset", append([]string{"-c", strconv.Itoa(cpu), bin}, args...)...)
	cmd.Env = env
	p := &proc{name: name, cmd: cmd, log: &lockedWriter{}, done: make(chan struct{})}
	cmd.Stderr = p.log
	if pipe {
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		p.lines = bufio.NewScanner(out)
	} else {
		cmd.Stdout = cmd.Stderr
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	ps.mu.Lock()
	ps.list = append(ps.list, p)
	ps.mu.Unlock()
	return p, nil
}

// wait waits for p to exit after its stdout was read to the end.
func (p *proc) wait() error {
	_, _ = io.Copy(io.Discard, p.lineReader())
	err := p.cmd.Wait()
	close(p.done)
	if err != nil {
		return fmt.Errorf("%s: %w: %s", p.name, err, p.stderr())
	}
	return nil
}

// lineReader drains what the scanner has not read.
func (p *proc) lineReader() io.Reader {
	return readerFunc(func(b []byte) (int, error) {
		if !p.lines.Scan() {
			return 0, io.EOF
		}
		return copy(b, p.lines.Bytes()), nil
	})
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(b []byte) (int, error) { return f(b) }

func (p *proc) stderr() string {
	s := strings.TrimSpace(p.log.String())
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	return s
}

// stop ends p by PID: SIGTERM, then SIGKILL after five seconds.
func (ps *procs) stop(p *proc) {
	ps.mu.Lock()
	for i, q := range ps.list {
		if q == p {
			ps.list = append(ps.list[:i], ps.list[i+1:]...)
			break
		}
	}
	ps.mu.Unlock()
	exited := make(chan struct{})
	go func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Wait()
		}
		close(exited)
	}()
	_ = syscall.Kill(p.pid(), syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(p.pid(), syscall.SIGKILL)
		<-exited
	}
}

// stopAll stops every process still running, newest first.
func (ps *procs) stopAll() {
	for {
		ps.mu.Lock()
		var p *proc
		if n := len(ps.list); n > 0 {
			p = ps.list[n-1]
		}
		ps.mu.Unlock()
		if p == nil {
			return
		}
		ps.stop(p)
	}
}

// lockedWriter serialises writes to a strings.Builder.
type lockedWriter struct {
	mu sync.Mutex
	w  strings.Builder
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
