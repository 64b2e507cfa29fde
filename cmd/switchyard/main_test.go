package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/internal/testenv"
)

func runBinary(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(testenv.BuildBinary(t, "./cmd/switchyard"), args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), out.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, out.String()
}

func TestInvalidConfigExitsNonZeroNamingKeyAndValue(t *testing.T) {
	cases := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"bad duration from env", []string{"SWITCHYARD_BACKENDS=127.0.0.1:9001", "SWITCHYARD_HEALTH_TIMEOUT=fast"}, nil, `health.timeout: invalid value "fast"`},
		{"bad listen address", []string{"SWITCHYARD_BACKENDS=127.0.0.1:9001", "SWITCHYARD_LISTEN=nowhere"}, nil, `listen: invalid value "nowhere"`},
		{"missing file", nil, []string{"--config", "/nonexistent/switchyard.yaml"}, "/nonexistent/switchyard.yaml"},
		{"nothing configured", nil, nil, "no services"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := append([]string{"SWITCHYARD_CONFIG=", "SWITCHYARD_LISTEN=127.0.0.1:0", "SWITCHYARD_ADMIN_LISTEN=127.0.0.1:0"}, c.env...)
			code, out := runBinary(t, env, c.args...)
			if code == 0 {
				t.Fatalf("exit 0, want non-zero; output:\n%s", out)
			}
			if !strings.Contains(out, c.want) {
				t.Fatalf("output %q does not contain %q", out, c.want)
			}
			if strings.Contains(out, "listening") {
				t.Fatalf("it started listening before failing:\n%s", out)
			}
		})
	}
}

func TestCheckConfigAcceptsTheExampleConfig(t *testing.T) {
	example := filepath.Join(testenv.RepoRoot(t), "deployments", "switchyard.example.yaml")
	code, out := runBinary(t, nil, "--check-config", "--config", example)
	if code != 0 || !strings.Contains(out, "configuration ok") {
		t.Fatalf("exit %d: %s", code, out)
	}
}

// Heap profiling is off unless admin.pprof is on (main), so the profile
// served with it on must still be sampled. Its text form names twice the
// sampling rate in the header: "@ heap/1048576" at the default 512 KiB,
// "@ heap/0" with profiling off.
func TestAdminPprofServesASampledHeapProfile(t *testing.T) {
	admin := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	testenv.Start(t, []string{
		"SWITCHYARD_CONFIG=", "SWITCHYARD_BACKENDS=127.0.0.1:9", "SWITCHYARD_LISTEN=127.0.0.1:0",
		"SWITCHYARD_ADMIN_LISTEN=" + admin, "SWITCHYARD_ADMIN_PPROF=true",
	}, testenv.BuildBinary(t, "./cmd/switchyard"))
	var header string
	testenv.WaitFor(t, 10*time.Second, "the admin listener", func() bool {
		resp, err := http.Get("http://" + admin + "/debug/pprof/heap?debug=1")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		header, _ = bufio.NewReader(resp.Body).ReadString('\n')
		return resp.StatusCode == http.StatusOK
	})
	_, rate, ok := strings.Cut(strings.TrimSpace(header), "@ heap/")
	if n, err := strconv.Atoi(rate); !ok || err != nil || n <= 0 {
		t.Fatalf("heap profile header %q: want a positive sampling rate after @ heap/", header)
	}
}
