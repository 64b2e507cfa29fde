// Package dockertest runs Compose projects under a real Docker Engine for
// tests: it finds the installed Compose (`docker compose`, else
// `docker-compose`), says why a test must be skipped (no daemon, a
// published port taken), provides the stand-in images of
// scripts/docker-standins.sh, and removes everything a project created.
//
// Every project gets a unique name, so runs never share containers or
// networks; the published ports are those of the compose files, so two
// projects publishing the same port cannot run at once, and SkipReason
// reports it.
package dockertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Compose is one Compose project: the files it is made of and the command
// that runs it. Its methods may be called from any goroutine.
type Compose struct {
	// Command is the installed Compose: ["docker", "compose"] or
	// ["docker-compose"].
	Command []string
	// Version is what `Command version --short` printed.
	Version string
	// Dir is where the commands run (the repository root); Files are
	// relative to it.
	Dir     string
	Files   []string
	Project string
	// Log receives every command line and its output; nil discards them.
	Log io.Writer
}

// FindCompose returns the installed Compose, preferring the v2 plugin.
func FindCompose(ctx context.Context) (command []string, version string, err error) {
	for _, c := range [][]string{{"docker", "compose"}, {"docker-compose"}} {
		args := append(append([]string{}, c[1:]...), "version", "--short")
		out, err := exec.CommandContext(ctx, c[0], args...).Output()
		if err == nil {
			return c, strings.TrimSpace(string(out)), nil
		}
	}
	return nil, "", errors.New("neither `docker compose` nor `docker-compose` is installed")
}

// SkipReason returns why a test of compose file(s) cannot run here, in one
// line, or "" when a Docker daemon answers, Compose is installed and every
// port the files publish on the host is free.
func SkipReason(ctx context.Context, composeFiles ...string) string {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		return fmt.Sprintf("no Docker daemon answers (docker info: %v: %s)", err, firstLine(out))
	}
	if _, _, err := FindCompose(ctx); err != nil {
		return err.Error()
	}
	for _, f := range composeFiles {
		ports, err := PublishedPorts(f)
		if err != nil {
			return err.Error()
		}
		for _, p := range ports {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				return fmt.Sprintf("port %d, which %s publishes, is taken on this machine (%v)", p, filepath.Base(f), err)
			}
			l.Close()
		}
	}
	return ""
}

var publishedPort = regexp.MustCompile(`^\s*-\s*"?(?:[0-9.]+:)?([0-9]+):[0-9]+`)

// PublishedPorts returns the host ports a compose file publishes
// ("HOST:CONTAINER" entries of ports lists).
func PublishedPorts(composeFile string) ([]int, error) {
	b, err := os.ReadFile(composeFile)
	if err != nil {
		return nil, fmt.Errorf("reading compose file: %w", err)
	}
	var ports []int
	for _, line := range strings.Split(string(b), "\n") {
		if m := publishedPort.FindStringSubmatch(line); m != nil {
			p, _ := strconv.Atoi(m[1])
			ports = append(ports, p)
		}
	}
	return ports, nil
}

// NewProject returns a Compose for files under a new unique project name
// that starts with prefix.
func NewProject(ctx context.Context, dir, prefix string, log io.Writer, files ...string) (*Compose, error) {
	cmd, version, err := FindCompose(ctx)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 4)
	rand.Read(b)
	return &Compose{Command: cmd, Version: version, Dir: dir, Files: files, Project: prefix + hex.EncodeToString(b), Log: log}, nil
}

// Run runs Compose with args on the project and returns its standard
// output; the error carries the end of its standard error.
func (c *Compose) Run(ctx context.Context, args ...string) (string, error) {
	full := append([]string{}, c.Command[1:]...)
	full = append(full, "-p", c.Project)
	for _, f := range c.Files {
		full = append(full, "-f", f)
	}
	full = append(full, args...)
	return c.run(ctx, c.Command[0], full...)
}

// Docker runs the docker CLI with args and returns its standard output.
func (c *Compose) Docker(ctx context.Context, args ...string) (string, error) {
	return c.run(ctx, "docker", args...)
}

// query runs what Run runs without logging it: for the commands tests poll.
func (c *Compose) query(ctx context.Context, args ...string) (string, error) {
	quiet := *c
	quiet.Log = nil
	return quiet.Run(ctx, args...)
}

// run runs name with args in c.Dir, logging the command line, its
// standard error and (for up and build, live) its output to c.Log.
func (c *Compose) run(ctx context.Context, name string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = c.Dir
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	live := slices.Contains(args, "up") || slices.Contains(args, "build")
	if c.Log != nil {
		// Live, so that a long build shows its progress.
		fmt.Fprintf(c.Log, "$ %s %s\n", name, strings.Join(args, " "))
		cmd.Stderr = io.MultiWriter(&stderr, c.Log)
		if live {
			cmd.Stdout = io.MultiWriter(&stdout, c.Log)
		}
	}
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	if c.Log != nil {
		out := ""
		if !live {
			out = tail(stdout.String(), 2000)
		}
		fmt.Fprintf(c.Log, "%s(%s)\n", out, time.Since(start).Round(100*time.Millisecond))
	}
	if err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, tail(stderr.String(), 2000))
	}
	return stdout.String(), nil
}

// ContainerID returns the id of service's container (the first, if
// scaled), or an error when it has none.
func (c *Compose) ContainerID(ctx context.Context, service string) (string, error) {
	out, err := c.query(ctx, "ps", "-q", service)
	if err != nil {
		return "", err
	}
	id := firstLine([]byte(out))
	if id == "" {
		return "", fmt.Errorf("service %s has no container", service)
	}
	return id, nil
}

// Container is the part of `docker inspect` the tests read.
type Container struct {
	ID    string
	Name  string
	State struct {
		Status    string
		StartedAt time.Time
		Health    *struct {
			Status string
			Log    []struct {
				Start, End time.Time
				ExitCode   int
				Output     string
			}
		}
	}
	Config struct {
		User   string
		Image  string
		Labels map[string]string
	}
	HostConfig struct {
		ReadonlyRootfs bool
	}
	NetworkSettings struct {
		Networks map[string]struct {
			IPAddress string
		}
	}
}

// Inspect returns the state of the container with id.
func (c *Compose) Inspect(ctx context.Context, id string) (Container, error) {
	out, err := exec.CommandContext(ctx, "docker", "inspect", "--type", "container", id).Output()
	if err != nil {
		return Container{}, fmt.Errorf("docker inspect %s: %w", id, err)
	}
	var cs []Container
	if err := json.Unmarshal(out, &cs); err != nil || len(cs) != 1 {
		return Container{}, fmt.Errorf("decoding docker inspect %s: %v (%d containers)", id, err, len(cs))
	}
	return cs[0], nil
}

// Leftovers lists the containers and networks labelled with the project
// that still exist.
func (c *Compose) Leftovers(ctx context.Context) ([]string, error) {
	filter := "label=com.docker.compose.project=" + c.Project
	var left []string
	for _, args := range [][]string{
		{"ps", "-a", "--filter", filter, "--format", "container {{.Names}} ({{.Status}})"},
		{"network", "ls", "--filter", filter, "--format", "network {{.Name}}"},
		{"volume", "ls", "--filter", filter, "--format", "volume {{.Name}}"},
	} {
		out, err := c.Docker(ctx, args...)
		if err != nil {
			return nil, err
		}
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if l != "" {
				left = append(left, l)
			}
		}
	}
	return left, nil
}

// Images returns the images Compose built for the project, by service:
// the names Compose v1 (project_service) and v2 (project-service) give.
func (c *Compose) Images(ctx context.Context) (map[string]string, error) {
	out, err := c.Docker(ctx, "images", "--format", "{{.Repository}}:{{.Tag}}")
	if err != nil {
		return nil, err
	}
	images := map[string]string{}
	for _, ref := range strings.Fields(out) {
		repo, _, _ := strings.Cut(ref, ":")
		for _, sep := range []string{"_", "-"} {
			if s, ok := strings.CutPrefix(repo, c.Project+sep); ok {
				images[s] = ref
			}
		}
	}
	return images, nil
}

// Down removes the project's containers, networks and volumes, then the
// tags of the images it built, keeping their layers as the build cache of
// the next run (docker rmi --no-prune).
func (c *Compose) Down(ctx context.Context) error {
	_, err := c.Run(ctx, "down", "-v", "--remove-orphans", "--timeout", "5")
	images, ierr := c.Images(ctx)
	if ierr == nil && len(images) > 0 {
		args := []string{"rmi", "--no-prune"}
		for _, ref := range images {
			args = append(args, ref)
		}
		_, ierr = c.Docker(ctx, args...)
	}
	return errors.Join(err, ierr)
}

// RemoveAbandoned removes the containers, networks and volumes of earlier
// projects named prefix + 8 hex digits (see NewProject) whose test was
// killed before its cleanup ran, and the tags of their images (keeping the
// layers, as Down does); it returns the projects' names. Call it only
// when SkipReason found the published ports free, so that no live run of
// the same test owns them.
func RemoveAbandoned(ctx context.Context, prefix string) ([]string, error) {
	out, err := exec.CommandContext(ctx, "docker", "ps", "-a", "--filter", "label=com.docker.compose.project",
		"--format", `{{.Label "com.docker.compose.project"}}`).Output()
	if err != nil {
		return nil, fmt.Errorf("listing compose containers: %w", err)
	}
	ours := regexp.MustCompile("^" + regexp.QuoteMeta(prefix) + "[0-9a-f]{8}$")
	var removed []string
	for _, p := range strings.Fields(string(out)) {
		if !ours.MatchString(p) || slices.Contains(removed, p) {
			continue
		}
		removed = append(removed, p)
		filter := "label=com.docker.compose.project=" + p
		for _, list := range [][]string{{"ps", "-aq"}, {"network", "ls", "-q"}, {"volume", "ls", "-q"}} {
			ids, err := exec.CommandContext(ctx, "docker", append(list, "--filter", filter)...).Output()
			if err != nil || len(strings.Fields(string(ids))) == 0 {
				continue
			}
			rm := map[string][]string{"ps": {"rm", "-f", "-v"}, "network": {"network", "rm"}, "volume": {"volume", "rm", "-f"}}[list[0]]
			if out, err := exec.CommandContext(ctx, "docker", append(rm, strings.Fields(string(ids))...)...).CombinedOutput(); err != nil {
				return removed, fmt.Errorf("removing project %s: %w: %s", p, err, out)
			}
		}
	}
	images, err := exec.CommandContext(ctx, "docker", "images", "--format", "{{.Repository}}:{{.Tag}}").Output()
	if err != nil {
		return removed, fmt.Errorf("listing images: %w", err)
	}
	ourImage := regexp.MustCompile("^" + regexp.QuoteMeta(prefix) + "[0-9a-f]{8}[_-]")
	var tags []string
	for _, ref := range strings.Fields(string(images)) {
		if ourImage.MatchString(ref) {
			tags = append(tags, ref)
		}
	}
	if len(tags) > 0 {
		if out, err := exec.CommandContext(ctx, "docker", append([]string{"rmi", "--no-prune"}, tags...)...).CombinedOutput(); err != nil {
			return removed, fmt.Errorf("untagging %q: %w: %s", tags, err, out)
		}
	}
	return removed, nil
}

// StandIns runs scripts/docker-standins.sh in dir, which puts the local
// stand-ins for the base, Consul and Jaeger images into the engine,
// printing its progress to log.
func StandIns(ctx context.Context, dir string, log io.Writer) error {
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "scripts", "docker-standins.sh"))
	cmd.Dir = dir
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("building the stand-in images (scripts/docker-standins.sh): %w", err)
	}
	return nil
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}

func tail(s string, n int) string {
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	if s != "" && !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return s
}
