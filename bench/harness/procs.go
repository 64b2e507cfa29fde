package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// userHZ is the unit of utime and stime in /proc/<pid>/stat. Linux exposes
// USER_HZ = 100 to user space on every architecture Go supports.
const userHZ = 100

// proc is one process the harness started. The harness stops it by its PID
// (and its descendants by theirs); nothing is ever stopped by name.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string // file with the process's stdout and stderr
	done chan struct{}
	err  error // exit status; read only after done is closed
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// logTail returns the last lines of the process's output, for errors.
func (p *proc) logTail() string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

// procs tracks every process the harness started, so that stopAll can
// stop them on any exit path. Safe for concurrent use.
type procs struct {
	mu   sync.Mutex
	list []*proc
}

// start runs bin with args, pinned to cpu when cpu >= 0 (through taskset,
// which execs bin, so the PID is bin's). The child gets its own process
// group, so a Ctrl-C on the terminal reaches only the harness, which then
// stops the child in order; if the harness dies, the kernel sends the child
// SIGTERM (Pdeathsig).
func (ps *procs) start(dir, name string, cpu int, env []string, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var cmd *exec.Cmd
	if cpu >= 0 {
		cmd = exec.Command("taskset", append([]string{"-c", strconv.Itoa(cpu), bin}, args...)...)
	} else {
		cmd = exec.Command(bin, args...)
	}
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	ps.mu.Lock()
	ps.list = append(ps.list, p)
	ps.mu.Unlock()
	return p, nil
}

// stop ends p and every process it started: SIGTERM to p, SIGKILL after
// five seconds, then SIGKILL to any descendant still alive (an nginx worker
// whose master was killed, say). Descendants are identified by PID and
// start time, so a reused PID is never signalled.
func (ps *procs) stop(p *proc) {
	ps.mu.Lock()
	for i, q := range ps.list {
		if q == p {
			ps.list = append(ps.list[:i], ps.list[i+1:]...)
			break
		}
	}
	ps.mu.Unlock()
	if p.exited() {
		return
	}
	kids := descendants(p.pid())
	_ = syscall.Kill(p.pid(), syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(p.pid(), syscall.SIGKILL)
		<-p.done
	}
	for _, k := range kids {
		deadline := time.Now().Add(2 * time.Second)
		for alive(k) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if alive(k) {
			_ = syscall.Kill(k.pid, syscall.SIGKILL)
		}
	}
}

// stopAll stops every process still running, newest first.
func (ps *procs) stopAll() {
	for {
		ps.mu.Lock()
		n := len(ps.list)
		var p *proc
		if n > 0 {
			p = ps.list[n-1]
		}
		ps.mu.Unlock()
		if p == nil {
			return
		}
		ps.stop(p)
	}
}

// procStat is what the harness reads from /proc/<pid>/stat.
type procStat struct {
	pid   int
	ppid  int
	ticks uint64 // utime + stime, in 1/userHZ seconds
	start uint64 // start time since boot, identifies the process with pid
}

// parseStat parses the contents of /proc/<pid>/stat. The command name is
// in parentheses and may itself contain spaces and parentheses, so fields
// are counted from the last ')'.
func parseStat(b []byte) (procStat, error) {
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 1 || end < open {
		return procStat{}, errors.New("malformed stat")
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:open])))
	if err != nil {
		return procStat{}, fmt.Errorf("malformed stat pid: %w", err)
	}
	f := strings.Fields(string(b[end+1:]))
	// f[0] is field 3 (state): ppid is field 4, utime 14, stime 15, starttime 22.
	if len(f) < 20 {
		return procStat{}, errors.New("short stat")
	}
	var v [4]uint64
	for i, idx := range []int{1, 11, 12, 19} {
		if v[i], err = strconv.ParseUint(f[idx], 10, 64); err != nil {
			return procStat{}, fmt.Errorf("malformed stat field %d: %w", idx+3, err)
		}
	}
	return procStat{pid: pid, ppid: int(v[0]), ticks: v[1] + v[2], start: v[3]}, nil
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	return parseStat(b)
}

// alive reports whether the process s describes still exists (same PID and
// start time) and is not a zombie waiting for its parent.
func alive(s procStat) bool {
	now, err := readStat(s.pid)
	return err == nil && now.start == s.start && !isZombie(s.pid)
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	end := bytes.LastIndexByte(b, ')')
	return end > 0 && end+2 < len(b) && b[end+2] == 'Z'
}

// tree returns root and all its descendants, root first.
func tree(root int) []procStat {
	rs, err := readStat(root)
	if err != nil {
		return nil
	}
	entries, _ := os.ReadDir("/proc")
	byParent := map[int][]procStat{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if s, err := readStat(pid); err == nil {
			byParent[s.ppid] = append(byParent[s.ppid], s)
		}
	}
	out := []procStat{rs}
	for i := 0; i < len(out); i++ {
		out = append(out, byParent[out[i].pid]...)
	}
	return out
}

func descendants(root int) []procStat {
	t := tree(root)
	if len(t) == 0 {
		return nil
	}
	return t[1:]
}

// cpuSample maps each process of a tree to its CPU ticks.
type cpuSample map[procStat]uint64

func sampleCPU(root int) cpuSample {
	s := cpuSample{}
	for _, p := range tree(root) {
		key := p
		key.ticks = 0
		s[key] = p.ticks
	}
	return s
}

// cpuSince returns the CPU time the tree spent between before and now.
// Processes that appeared in between count from zero.
func cpuSince(before, now cpuSample) time.Duration {
	var ticks uint64
	for k, t := range now {
		if b := before[k]; t > b {
			ticks += t - b
		}
	}
	return time.Duration(ticks) * time.Second / userHZ
}

// peakRSS returns the largest VmHWM (peak resident set) in KiB among the
// processes of root's tree: for nginx the worker, for the others the one
// process. VmHWM is a lifetime peak, which is why the harness starts each
// proxy afresh for every run.
func peakRSS(root int) int64 {
	var peak int64
	for _, p := range tree(root) {
		if v := vmHWM(p.pid); v > peak {
			peak = v
		}
	}
	return peak
}

func vmHWM(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	return parseVmHWM(f)
}

func parseVmHWM(r io.Reader) int64 {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			fields := strings.Fields(rest) // "12345 kB"
			if len(fields) > 0 {
				v, _ := strconv.ParseInt(fields[0], 10, 64)
				return v
			}
		}
	}
	return 0
}
