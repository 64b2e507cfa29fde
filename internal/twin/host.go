package twin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// What the twin takes from the machine it runs on: its environment, the
// repository root and the external tools.

// baseEnv is the twin's own environment without the variables the
// programs of the topology read, so only the compose environment sets
// them.
func baseEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool {
		for _, p := range []string{"SWITCHYARD_", "DEMO_", "CONSUL_", "OTEL_"} {
			if strings.HasPrefix(kv, p) {
				return true
			}
		}
		return false
	})
}

// findRoot returns the first directory upwards from the working directory
// holding both go.mod and docker-compose.yml.
func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		_, e1 := os.Stat(filepath.Join(dir, "go.mod"))
		_, e2 := os.Stat(filepath.Join(dir, "docker-compose.yml"))
		if e1 == nil && e2 == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no directory with go.mod and docker-compose.yml above the working directory; set Options.Root")
		}
		dir = parent
	}
}

// tool returns the path of consul or jaeger as scripts/tools.sh provides
// it: the one on PATH, else the tools cache, built there on first use
// (minutes; its progress goes to logw).
func tool(ctx context.Context, root, name string, logw io.Writer) (string, error) {
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "scripts", "tools.sh"), name)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, logw
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("scripts/tools.sh %s: %w", name, err)
	}
	path := strings.TrimSpace(out.String())
	if path == "" {
		return "", fmt.Errorf("scripts/tools.sh %s printed no path", name)
	}
	return path, nil
}
