package soak

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
)

// The gateway's resources, read from /proc and its admin API. A reading
// that fails is 0: the sample is still recorded, and Trend sees the gap.

func rssKiB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

func fds(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0
	}
	return len(ents)
}

func goroutines(c *http.Client, adminURL string) int {
	resp, err := c.Get(adminURL + "/api/v1/runtime")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var v struct {
		Goroutines int `json:"goroutines"`
	}
	json.NewDecoder(resp.Body).Decode(&v)
	return v.Goroutines
}

// Trend compares the first and last third of the samples (after warm-up)
// and returns a description of any resource that keeps growing.
func Trend(s []Sample) []string {
	if len(s) < 9 {
		return nil
	}
	s = s[len(s)/10:]
	third := len(s) / 3
	first, last := s[:third], s[len(s)-third:]
	var out []string
	maxOf := func(xs []Sample, f func(Sample) int64) int64 {
		var m int64
		for _, x := range xs {
			m = max(m, f(x))
		}
		return m
	}
	mean := func(xs []Sample, f func(Sample) int64) int64 {
		var t int64
		for _, x := range xs {
			t += f(x)
		}
		return t / int64(len(xs))
	}
	rss := func(x Sample) int64 { return x.RSSKiB }
	if a, b := mean(first, rss), mean(last, rss); b > a+a*3/10+8<<10 {
		out = append(out, fmt.Sprintf("RSS mean %d KiB -> %d KiB", a, b))
	}
	gor := func(x Sample) int64 { return int64(x.Goroutines) }
	if a, b := maxOf(first, gor), maxOf(last, gor); b > a+a/2+20 {
		out = append(out, fmt.Sprintf("goroutines max %d -> %d", a, b))
	}
	fd := func(x Sample) int64 { return int64(x.FDs) }
	if a, b := maxOf(first, fd), maxOf(last, fd); b > a+a/2+20 {
		out = append(out, fmt.Sprintf("file descriptors max %d -> %d", a, b))
	}
	return out
}
