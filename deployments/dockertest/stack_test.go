package dockertest_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/internal/dockertest"
	"github.com/switchyard-gw/switchyard/internal/testenv"
)

// stack brings up composeFile under a new project, as a user would, with
// the stand-in images of scripts/docker-standins.sh swapped in by override,
// and removes everything at cleanup. It skips the test when Docker cannot
// run it here.
func stack(t *testing.T, prefix, composeFile, override string) (*dockertest.Compose, context.Context) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs docker-compose under a real Docker Engine; skipped with -short")
	}
	root := testenv.RepoRoot(t)
	if why := dockertest.SkipReason(t.Context(), filepath.Join(root, composeFile)); why != "" {
		t.Skip(why)
	}
	// Leave a minute of the test binary's time to clean up: a binary that
	// times out runs no cleanup.
	deadline := time.Now().Add(25 * time.Minute)
	if d, ok := t.Deadline(); ok && d.Add(-time.Minute).Before(deadline) {
		deadline = d.Add(-time.Minute)
	}
	ctx, cancel := context.WithDeadline(t.Context(), deadline)
	t.Cleanup(cancel)
	if gone, err := dockertest.RemoveAbandoned(ctx, prefix); err != nil {
		t.Fatal(err)
	} else if len(gone) > 0 {
		t.Logf("removed what killed runs left behind: projects %q", gone)
	}

	log := t.Output()
	if testing.Verbose() {
		log = os.Stderr
	}
	start := time.Now()
	if err := dockertest.StandIns(ctx, root, log); err != nil {
		t.Fatal(err)
	}
	c, err := dockertest.NewProject(ctx, root, prefix, log, composeFile, override)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("compose %s %s, project %s", strings.Join(c.Command, " "), c.Version, c.Project)
	t.Cleanup(func() {
		// Not ctx: it may have expired; cleanup gets its own time.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if t.Failed() {
			if out, err := c.Run(ctx, "logs", "--no-color", "--tail", "40"); err == nil {
				t.Logf("the end of every container's log:\n%s", out)
			}
		}
		if err := c.Down(ctx); err != nil {
			t.Errorf("cleaning up project %s: %v", c.Project, err)
		}
		if left, err := c.Leftovers(ctx); err != nil || len(left) > 0 {
			t.Errorf("project %s left behind %q (%v)", c.Project, left, err)
		}
	})
	if _, err := c.Run(ctx, "up", "-d", "--build"); err != nil {
		t.Fatal(err)
	}
	t.Logf("stand-ins, build and up: %s", time.Since(start).Round(time.Second))
	return c, ctx
}

// waitHealthy waits until each service's container runs and, when it has a
// healthcheck, is healthy.
func waitHealthy(t *testing.T, ctx context.Context, c *dockertest.Compose, timeout time.Duration, services ...string) {
	t.Helper()
	state := map[string]string{}
	testenv.WaitFor(t, timeout, "every container healthy", func() bool {
		ok := true
		for _, svc := range services {
			st := "no container"
			if id, err := c.ContainerID(ctx, svc); err == nil {
				if ct, err := c.Inspect(ctx, id); err == nil {
					st = ct.State.Status
					if ct.State.Health != nil {
						st += "/" + ct.State.Health.Status
					}
				}
			}
			state[svc] = st
			ok = ok && (st == "running" || st == "running/healthy")
		}
		if !ok {
			// Polling docker is not free on a shared machine.
			time.Sleep(500 * time.Millisecond)
		}
		return ok
	})
	t.Logf("containers: %v", state)
}

// waitRoutable waits until the gateway at admin shows backend in or out of
// rotation, within healthFlipBound.
func waitRoutable(t *testing.T, client *http.Client, admin, backend string, want bool) {
	t.Helper()
	testenv.WaitFor(t, healthFlipBound, fmt.Sprintf("%s routable=%v at %s", backend, want, admin), func() bool {
		s, err := getServices(client, admin)
		return err == nil && s.routableByName()[backend] == want
	})
}

// checkNoFailures fails the test for every request of a load that failed.
func checkNoFailures(t *testing.T, results []testenv.Request) {
	t.Helper()
	counts := map[string]int{}
	failed := 0
	for _, r := range results {
		if r.Err != "" {
			failed++
			if failed <= 10 {
				t.Errorf("request to %s at %s failed: %s", r.Target, r.Start.Format("15:04:05.000"), r.Err)
			}
			continue
		}
		counts[r.Backend]++
	}
	t.Logf("%d requests, %d failed; answered by %v", len(results), failed, counts)
	if failed > 0 {
		t.Errorf("%d of %d requests failed", failed, len(results))
	}
}
