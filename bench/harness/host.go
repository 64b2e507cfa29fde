package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// hostDesc describes the machine for the report; "?" where /proc does not say.
type hostDesc struct {
	cpus    int
	model   string
	kernel  string
	memory  string
	loadavg string
}

func hostInfo() hostDesc {
	h := hostDesc{cpus: runtime.NumCPU(), model: "?", kernel: "?", memory: "?", loadavg: "?"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				h.model = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h.kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				if f := strings.Fields(rest); len(f) > 0 {
					kb, _ := strconv.ParseFloat(f[0], 64)
					h.memory = fmt.Sprintf("%.0f GiB", kb/(1<<20))
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			h.loadavg = strings.Join(f[:3], " ")
		}
	}
	return h
}
