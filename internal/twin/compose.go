package twin

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// composeFile is the part of the Compose specification the twin reads. As
// deployments/compose_test.go requires, commands are lists and
// environments and depends_on are maps.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Target string `yaml:"target"`
	} `yaml:"build"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
}

// Programs the twin can run in place of a compose service.
const (
	programConsul = "consul" // image hashicorp/consul: the consul binary of scripts/tools.sh
	programJaeger = "jaeger" // image jaegertracing/all-in-one: the jaeger binary of scripts/tools.sh
)

// published is one entry of a service's ports list: the container port
// and the host port it is published on.
type published struct {
	container, host int
}

// service is a compose service as the twin plans to run it, before any
// address is rewritten.
type service struct {
	name string
	// program is programConsul, programJaeger, or the name of a command of
	// this module (./cmd/<program>), which is what the Dockerfile target of
	// the same name runs.
	program   string
	command   []string
	env       map[string]string
	published []published
	dependsOn []string
	level     int // start order: 1 + the highest level of its dependencies
}

// loadCompose reads path and plans every service, sorted by start level
// then name.
func loadCompose(path, root string) ([]*service, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f composeFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(f.Services) == 0 {
		return nil, fmt.Errorf("reading %s: no services", path)
	}
	byName := map[string]*service{}
	for name, cs := range f.Services {
		s, err := planService(name, cs, root)
		if err != nil {
			return nil, fmt.Errorf("%s: service %s: %w", path, name, err)
		}
		byName[name] = s
	}
	for _, s := range byName {
		for _, dep := range s.dependsOn {
			if byName[dep] == nil {
				return nil, fmt.Errorf("%s: service %s depends on unknown service %q", path, s.name, dep)
			}
		}
	}
	out := make([]*service, 0, len(byName))
	for _, s := range byName {
		if _, err := levelOf(s, byName, nil); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *service) int {
		if a.level != b.level {
			return a.level - b.level
		}
		return strings.Compare(a.name, b.name)
	})
	return out, nil
}

func planService(name string, cs composeService, root string) (*service, error) {
	s := &service{name: name, command: cs.Command, env: cs.Environment, level: -1}
	if len(cs.Entrypoint) > 0 {
		return nil, fmt.Errorf("entrypoint %q: the twin runs the image's own program", cs.Entrypoint)
	}
	switch {
	case cs.Build != nil:
		// Both targets of deployments/Dockerfile run /<target>, built from
		// ./cmd/<target>.
		if cs.Build.Target == "" {
			return nil, fmt.Errorf("build without a target")
		}
		if _, err := os.Stat(filepath.Join(root, "cmd", cs.Build.Target)); err != nil {
			return nil, fmt.Errorf("build target %q: no ./cmd/%s to run in its place", cs.Build.Target, cs.Build.Target)
		}
		s.program = cs.Build.Target
	case strings.HasPrefix(cs.Image, "hashicorp/consul:"):
		s.program = programConsul
	case strings.HasPrefix(cs.Image, "jaegertracing/all-in-one:"):
		s.program = programJaeger
		if len(cs.Command) > 0 {
			return nil, fmt.Errorf("command %q: the twin's jaeger takes its configuration from a file", cs.Command)
		}
	default:
		return nil, fmt.Errorf("image %q has no process twin", cs.Image)
	}
	for _, p := range cs.Ports {
		pp, err := parsePort(p)
		if err != nil {
			return nil, err
		}
		s.published = append(s.published, pp)
	}
	for dep := range cs.DependsOn {
		s.dependsOn = append(s.dependsOn, dep)
	}
	slices.Sort(s.dependsOn)
	return s, nil
}

// parsePort reads a short-syntax port: "C", "H:C" or "IP:H:C", with an
// optional "/tcp". A port without a host side is published on a random
// host port by Compose; the twin then gives it none.
func parsePort(p string) (published, error) {
	spec, proto, _ := strings.Cut(p, "/")
	if proto != "" && proto != "tcp" {
		return published{}, fmt.Errorf("port %q: only tcp is supported", p)
	}
	parts := strings.Split(spec, ":")
	num := func(s string) (int, error) {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 65535 {
			return 0, fmt.Errorf("port %q: %q is not a port number (ranges are not supported)", p, s)
		}
		return n, nil
	}
	c, err := num(parts[len(parts)-1])
	if err != nil {
		return published{}, err
	}
	out := published{container: c}
	if len(parts) >= 2 {
		if out.host, err = num(parts[len(parts)-2]); err != nil {
			return published{}, err
		}
	}
	if len(parts) > 3 {
		return published{}, fmt.Errorf("port %q: want C, H:C or IP:H:C", p)
	}
	return out, nil
}

// levelOf computes s.level, detecting cycles through visiting.
func levelOf(s *service, byName map[string]*service, visiting []string) (int, error) {
	if s.level >= 0 {
		return s.level, nil
	}
	if slices.Contains(visiting, s.name) {
		return 0, fmt.Errorf("depends_on cycle: %s", strings.Join(append(visiting, s.name), " -> "))
	}
	level := 0
	for _, dep := range s.dependsOn {
		l, err := levelOf(byName[dep], byName, append(visiting, s.name))
		if err != nil {
			return 0, err
		}
		level = max(level, l+1)
	}
	s.level = level
	return level, nil
}
