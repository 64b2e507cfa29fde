package main

import (
	"fmt"
	"path/filepath"
)

// tracingTarget is one row of the tracing benchmark (-tracing): a proxy and
// a trace sampler. A ratio of "" is tracing off, the proxy's default
// configuration with no OTLP endpoint.
type tracingTarget struct {
	name    string
	proxy   string // tSwitchyard or tCaddy
	sampler string // OTEL_TRACES_SAMPLER
	ratio   string // OTEL_TRACES_SAMPLER_ARG; "" for off
}

// tracingTargets run in this order in every round. Each proxy's "off" row
// is the base its other rows are compared with.
var tracingTargets = []tracingTarget{
	{"switchyard-off", tSwitchyard, "", ""},
	{"switchyard-0%", tSwitchyard, "traceidratio", "0"},
	{"switchyard-1%", tSwitchyard, "traceidratio", "0.01"},
	{"switchyard-failures+1%", tSwitchyard, "failures+traceidratio", "0.01"},
	{"switchyard-100%", tSwitchyard, "traceidratio", "1"},
	{"caddy-off", tCaddy, "", ""},
	{"caddy-1%", tCaddy, "traceidratio", "0.01"},
	{"caddy-100%", tCaddy, "traceidratio", "1"},
}

func tracingTargetNames() []string {
	var out []string
	for _, t := range tracingTargets {
		out = append(out, t.name)
	}
	return out
}

func findTracingTarget(name string) (tracingTarget, bool) {
	for _, t := range tracingTargets {
		if t.name == name {
			return t, true
		}
	}
	return tracingTarget{}, false
}

// baseOf is the "off" row of the same proxy.
func (t tracingTarget) baseOf() string { return t.proxy + "-off" }

// otelEnv is the OTLP and sampler environment of a traced row: OTLP
// http/protobuf to the harness's sink for both proxies (Caddy's exporter is
// the contrib autoexport, which reads the same variables), no metrics
// export from Caddy.
func (t tracingTarget) otelEnv(sink string) []string {
	if t.ratio == "" {
		return nil
	}
	return []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + sink,
		"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_TRACES_SAMPLER=" + t.sampler,
		"OTEL_TRACES_SAMPLER_ARG=" + t.ratio,
	}
}

// selectTracingTargets returns the -tracing rows selected by -targets,
// and a note for each one that cannot run here.
func (b *bench) selectTracingTargets() ([]target, []string) {
	want := map[string]bool{}
	for _, n := range b.cfg.targets {
		want[n] = true
	}
	var out []target
	var notes []string
	caddy, caddyErr := lookTool(b.cfg.caddy)
	sy := filepath.Join(b.bin, "switchyard")
	for _, tt := range tracingTargets {
		if !want[tt.name] {
			continue
		}
		switch tt.proxy {
		case tCaddy:
			if caddyErr != nil {
				notes = append(notes, fmt.Sprintf("%s skipped: %v", tt.name, caddyErr))
				continue
			}
			out = append(out, target{name: tt.name, bin: caddy, version: caddyVersion(caddy), start: startCaddyTraced(tt)})
		case tSwitchyard:
			out = append(out, target{name: tt.name, bin: sy, version: b.switchyardVersion(sy), start: startSwitchyardTraced(tt)})
		}
	}
	return out, notes
}

// needsSink says whether any selected target exports traces.
func needsSink(targets []target) bool {
	for _, t := range targets {
		if t.name == tSwitchOtel {
			return true
		}
		if tt, ok := findTracingTarget(t.name); ok && tt.ratio != "" {
			return true
		}
	}
	return false
}

func startSwitchyardTraced(tt tracingTarget) func(b *bench, listen string) (*proc, error) {
	return func(b *bench, listen string) (*proc, error) {
		if tt.ratio != "" && b.sinkAddr == "" {
			return nil, fmt.Errorf("no OTLP sink running")
		}
		dir, err := b.runDir(tt.name)
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
		env := append(append(b.env(), "GOMAXPROCS=1"), tt.otelEnv(b.sinkAddr)...)
		return b.procs.start(dir, safeName(tt.name), b.cfg.proxyCPU, env, filepath.Join(b.bin, "switchyard"), "-config", conf)
	}
}

func startCaddyTraced(tt tracingTarget) func(b *bench, listen string) (*proc, error) {
	return func(b *bench, listen string) (*proc, error) {
		if tt.ratio != "" && b.sinkAddr == "" {
			return nil, fmt.Errorf("no OTLP sink running")
		}
		dir, err := b.runDir(tt.name)
		if err != nil {
			return nil, err
		}
		conf := filepath.Join(dir, "Caddyfile")
		d := tplData{Listen: listen, Dir: dir, Backends: b.backendAddrs, Tracing: tt.ratio != ""}
		if err := b.render("Caddyfile.tmpl", d, conf); err != nil {
			return nil, err
		}
		bin, _ := lookTool(b.cfg.caddy)
		env := append(b.env(), "GOMAXPROCS=1",
			"XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "XDG_DATA_HOME="+filepath.Join(dir, "data"),
			"OTEL_METRICS_EXPORTER=none", "OTEL_LOGS_EXPORTER=none")
		env = append(env, tt.otelEnv(b.sinkAddr)...)
		return b.procs.start(dir, safeName(tt.name), b.cfg.proxyCPU, env, bin, "run", "--config", conf, "--adapter", "caddyfile")
	}
}
