package main

import (
	"bytes"
	"debug/buildinfo"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
)

// Target names, in the order every round runs them.
const (
	tDirect     = "direct"
	tNginx      = "nginx"
	tHAProxy    = "haproxy"
	tCaddy      = "caddy"
	tHTTPUtil   = "httputil"
	tSwitchyard = "switchyard"
	tSwitchOtel = "switchyard+otel1%"
)

var allTargets = []string{tDirect, tNginx, tHAProxy, tCaddy, tHTTPUtil, tSwitchyard, tSwitchOtel}

// target is one row group of the table.
type target struct {
	name    string
	bin     string // the program under test; "" for direct
	version string
	// start launches the proxy listening on listen; nil for direct, which
	// sends wrk straight to the first backend.
	start func(b *bench, listen string) (*proc, error)
}

// tplData fills the templates in bench/configs.
type tplData struct {
	Listen   string   // host:port the proxy listens on
	Admin    string   // Switchyard's admin listener
	Dir      string   // a private directory for pid, logs and temp files
	Backends []string // host:port of each backend
	Tracing  bool     // Caddy: add the tracing directive (-tracing rows)
}

func (b *bench) render(name string, d tplData, out string) error {
	src := filepath.Join(b.cfg.configs, name)
	t, err := template.ParseFiles(src)
	if err != nil {
		return fmt.Errorf("config template: %w", err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, d); err != nil {
		return fmt.Errorf("config template %s: %w", src, err)
	}
	return os.WriteFile(out, buf.Bytes(), 0o644)
}

// runDir returns a fresh directory for one proxy run.
func (b *bench) runDir(name string) (string, error) {
	b.seq++
	dir := filepath.Join(b.tmp, fmt.Sprintf("%03d-%s", b.seq, safeName(name)))
	return dir, os.MkdirAll(dir, 0o755)
}

func safeName(s string) string {
	return strings.NewReplacer("+", "-", "%", "pct", "/", "-").Replace(s)
}

// targets returns the targets selected by -targets that can run here, and
// a note for each one skipped.
func (b *bench) targets() ([]target, []string) {
	if b.cfg.tracing {
		return b.selectTracingTargets()
	}
	want := map[string]bool{}
	for _, n := range b.cfg.targets {
		want[n] = true
	}
	var out []target
	var notes []string
	add := func(t target, missing string) {
		if !want[t.name] {
			return
		}
		if missing != "" {
			notes = append(notes, fmt.Sprintf("%s skipped: %s", t.name, missing))
			return
		}
		out = append(out, t)
	}
	for _, name := range allTargets {
		switch name {
		case tDirect:
			add(target{name: tDirect, version: "-"}, "")
		case tNginx:
			bin, err := lookTool(b.cfg.nginx)
			add(target{name: tNginx, bin: bin, version: nginxVersion(bin), start: startNginx}, errText(err))
		case tHAProxy:
			bin, err := lookTool(b.cfg.haproxy)
			add(target{name: tHAProxy, bin: bin, version: haproxyVersion(bin), start: startHAProxy}, errText(err))
		case tCaddy:
			bin, err := lookTool(b.cfg.caddy)
			add(target{name: tCaddy, bin: bin, version: caddyVersion(bin), start: startCaddy}, errText(err))
		case tHTTPUtil:
			bin := filepath.Join(b.bin, "plainproxy")
			add(target{name: tHTTPUtil, bin: bin, version: goVersion(bin), start: startPlainProxy}, "")
		case tSwitchyard, tSwitchOtel:
			bin := filepath.Join(b.bin, "switchyard")
			add(target{name: name, bin: bin, version: b.switchyardVersion(bin), start: startSwitchyard(name == tSwitchOtel)}, "")
		}
	}
	return out, notes
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// lookTool finds a program on PATH or in /usr/sbin (where Debian puts
// nginx and haproxy, and which is not on every user's PATH).
func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if !strings.Contains(name, "/") {
		if p := filepath.Join("/usr/sbin", name); isExecutable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found (scripts/bench.sh installs it)", name)
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

func startNginx(b *bench, listen string) (*proc, error) {
	dir, err := b.runDir(tNginx)
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := b.render("nginx.conf.tmpl", tplData{Listen: listen, Dir: dir, Backends: b.backendAddrs}, conf); err != nil {
		return nil, err
	}
	bin, _ := lookTool(b.cfg.nginx)
	return b.procs.start(dir, tNginx, b.cfg.proxyCPU, b.env(), bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
}

func startHAProxy(b *bench, listen string) (*proc, error) {
	dir, err := b.runDir(tHAProxy)
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "haproxy.cfg")
	if err := b.render("haproxy.cfg.tmpl", tplData{Listen: listen, Dir: dir, Backends: b.backendAddrs}, conf); err != nil {
		return nil, err
	}
	bin, _ := lookTool(b.cfg.haproxy)
	// -db: stay in the foreground, one process (no master-worker).
	return b.procs.start(dir, tHAProxy, b.cfg.proxyCPU, b.env(), bin, "-db", "-f", conf)
}

func startCaddy(b *bench, listen string) (*proc, error) {
	dir, err := b.runDir(tCaddy)
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "Caddyfile")
	if err := b.render("Caddyfile.tmpl", tplData{Listen: listen, Dir: dir, Backends: b.backendAddrs}, conf); err != nil {
		return nil, err
	}
	bin, _ := lookTool(b.cfg.caddy)
	env := append(b.env(), "GOMAXPROCS=1",
		// Keep Caddy's config and data directories out of $HOME.
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "XDG_DATA_HOME="+filepath.Join(dir, "data"))
	return b.procs.start(dir, tCaddy, b.cfg.proxyCPU, env, bin, "run", "--config", conf, "--adapter", "caddyfile")
}

func startPlainProxy(b *bench, listen string) (*proc, error) {
	dir, err := b.runDir(tHTTPUtil)
	if err != nil {
		return nil, err
	}
	return b.procs.start(dir, tHTTPUtil, b.cfg.proxyCPU, append(b.env(), "GOMAXPROCS=1"),
		filepath.Join(b.bin, "plainproxy"), "-listen", listen, "-backends", strings.Join(b.backendAddrs, ","))
}

// startSwitchyard runs Switchyard on a generated static config. With otel,
// traces go to the harness's OTLP sink at 1% sampling, set through the
// standard OTEL_* variables.
func startSwitchyard(otel bool) func(b *bench, listen string) (*proc, error) {
	return func(b *bench, listen string) (*proc, error) {
		name := tSwitchyard
		if otel {
			name = tSwitchOtel
		}
		dir, err := b.runDir(name)
		if err != nil {
			return nil, err
		}
		admin, err := freeAddr()
		if err != nil {
			return nil, err
		}
		conf := filepath.Join(dir, "switchyard.yaml")
		if err := b.render("switchyard.yaml.tmpl", tplData{Listen: listen, Admin: admin, Dir: dir, Backends: b.backendAddrs}, conf); err != nil {
			return nil, err
		}
		env := append(b.env(), "GOMAXPROCS=1")
		if otel {
			if b.sinkAddr == "" {
				return nil, fmt.Errorf("no OTLP sink running")
			}
			env = append(env,
				"OTEL_EXPORTER_OTLP_ENDPOINT=http://"+b.sinkAddr,
				"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
				"OTEL_TRACES_SAMPLER=traceidratio",
				"OTEL_TRACES_SAMPLER_ARG=0.01",
			)
		}
		return b.procs.start(dir, safeName(name), b.cfg.proxyCPU, env, filepath.Join(b.bin, "switchyard"), "-config", conf)
	}
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// cleanEnv is the environment for every child: the harness's own, without
// settings that would change what is measured (GOMAXPROCS is set per
// target; SWITCHYARD_* and OTEL_* would override the generated config).
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "GOMAXPROCS" || strings.HasPrefix(k, "SWITCHYARD_") || strings.HasPrefix(k, "OTEL_") || strings.HasPrefix(k, "CONSUL_HTTP_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// Versions, best effort: "?" when a program does not say.

func firstLine(bin string, args ...string) string {
	out, _ := exec.Command(bin, args...).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}

func nginxVersion(bin string) string {
	if bin == "" {
		return "?"
	}
	// "nginx version: nginx/1.22.1"
	if _, v, ok := strings.Cut(firstLine(bin, "-v"), "nginx/"); ok {
		return v
	}
	return "?"
}

func haproxyVersion(bin string) string {
	if bin == "" {
		return "?"
	}
	// "HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/"
	if f := strings.Fields(firstLine(bin, "-v")); len(f) >= 3 {
		return f[2]
	}
	return "?"
}

func caddyVersion(bin string) string {
	if bin == "" {
		return "?"
	}
	// `caddy version` says "unknown" for a `go install`ed binary; the
	// build info has the module version.
	if bi, err := buildinfo.ReadFile(bin); err == nil {
		if bi.Main.Path == "github.com/caddyserver/caddy/v2" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			return bi.Main.Version
		}
		for _, d := range bi.Deps {
			if d.Path == "github.com/caddyserver/caddy/v2" {
				return d.Version
			}
		}
	}
	if f := strings.Fields(firstLine(bin, "version")); len(f) > 0 {
		return f[0]
	}
	return "?"
}

func wrkVersion(bin string) string {
	// "wrk debian/4.1.0-3+b2 [epoll] Copyright (C) 2012 Will Glozer"
	if f := strings.Fields(firstLine(bin, "-v")); len(f) >= 2 {
		return f[1]
	}
	return "?"
}

func goVersion(bin string) string {
	if bi, err := buildinfo.ReadFile(bin); err == nil {
		return bi.GoVersion
	}
	return "?"
}

// switchyardVersion is the commit of the work tree the binary was built
// from (the build has no VCS stamp), marked when the tree has changes.
func (b *bench) switchyardVersion(bin string) string {
	v := "?"
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		v = strings.TrimSpace(string(out))
		if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
			v += "+changes"
		}
	}
	return v + ", " + goVersion(bin)
}

// itoa is strconv.Itoa, shorter at call sites that build names.
func itoa(n int) string { return strconv.Itoa(n) }
