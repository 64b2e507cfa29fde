package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of utime and stime in /proc/<pid>/stat (USER_HZ,
// 100 on every architecture Go supports).
const userHZ = 100

// parseTicks returns utime+stime from the contents of /proc/<pid>/stat.
// The command name is in parentheses and may contain spaces and
// parentheses, so fields are counted from the last ')'.
func parseTicks(b []byte) (uint64, error) {
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return 0, errors.New("malformed stat: no command name")
	}
	f := strings.Fields(string(b[end+1:]))
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("short stat: %d fields after the command", len(f))
	}
	var sum uint64
	for _, i := range []int{11, 12} {
		v, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("stat field %d: %w", i+3, err)
		}
		sum += v
	}
	return sum, nil
}

// cpuTime returns the CPU time (user + system) pid has used so far.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	t, err := parseTicks(b)
	return time.Duration(t) * time.Second / userHZ, err
}

// percentile returns the q-quantile (0 < q <= 1) of sorted by the
// nearest-rank method; 0 for an empty slice.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(q*float64(len(sorted)) + 0.999999)
	if rank < 1 {
		rank = 1
	}
	if rank > len(sorted) {
		rank = len(sorted)
	}
	return sorted[rank-1]
}

// spread is the median, minimum and maximum of one figure over rounds.
type spread struct{ med, min, max float64 }

// spreadOf summarises vs; the median of an even count is the mean of the
// middle two. The zero spread for no values.
func spreadOf(vs []float64) spread {
	if len(vs) == 0 {
		return spread{}
	}
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return spread{med: med, min: s[0], max: s[n-1]}
}

// ratios divides a[i] by b[i] for the rounds where both were measured
// (non-zero), so that each ratio compares runs from the same round.
func ratios(a, b []float64) []float64 {
	var out []float64
	for i := range a {
		if i < len(b) && a[i] > 0 && b[i] > 0 {
			out = append(out, a[i]/b[i])
		}
	}
	return out
}
