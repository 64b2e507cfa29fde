package config

import (
	"log/slog"
	"net/netip"
	"strings"
	"testing"
)

func TestStatusSetsParseAndPrint(t *testing.T) {
	cases := []struct {
		name, in, want string
		in2xx, in404   bool
	}{
		{"a range is inclusive at both ends", "200-399", "200-399", true, false},
		{"single codes and ranges mix", "200-299, 404", "200-299,404", true, true},
		{"adjacent codes print as one range", "200,201,202", "200-202", true, false},
		{"overlapping ranges are one set", "200-250,240-299", "200-299", true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := ParseStatusSet(c.in)
			if err != nil {
				t.Fatal(err)
			}
			if s.String() != c.want || s.Contains(200) != c.in2xx || s.Contains(404) != c.in404 {
				t.Errorf("%q: String %q, 200 %v, 404 %v", c.in, s, s.Contains(200), s.Contains(404))
			}
			again, err := ParseStatusSet(s.String())
			if err != nil || again != s {
				t.Errorf("%q does not read back as the same set (%v)", s, err)
			}
		})
	}
	for _, bad := range []string{"", "2xx", "99", "600", "300-200", "200-", "200,,204"} {
		if _, err := ParseStatusSet(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if Statuses(200, 399) != Default().Health.ExpectedStatus || Default().Health.ExpectedStatus.Contains(400) {
		t.Error("the default is not 200-399")
	}
}

func TestJitterIsAFractionBelowOne(t *testing.T) {
	for in, want := range map[string]Jitter{"10%": 0.1, "0.25": 0.25, "": 0, " 0% ": 0} {
		j, err := ParseJitter(in)
		if err != nil || j != want {
			t.Errorf("%q = %v, %v; want %v", in, j, err, want)
		}
	}
	for _, bad := range []string{"100%", "1", "-5%", "NaN", "ten"} {
		if _, err := ParseJitter(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if Jitter(0.1).String() != "10%" {
		t.Errorf("String = %q", Jitter(0.1).String())
	}
}

func TestCIDRsTakeBareAddressesAsOneHost(t *testing.T) {
	c, err := ParseCIDRs([]string{"10.1.2.3/8", " 192.168.0.1 ", "", "::ffff:127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.String(); got != "10.0.0.0/8,192.168.0.1/32,127.0.0.1/32" {
		t.Errorf("String = %q", got)
	}
	for addr, want := range map[string]bool{"10.200.0.1": true, "192.168.0.2": false, "::ffff:10.0.0.1": true, "127.0.0.1": true} {
		if c.Contains(netip.MustParseAddr(addr)) != want {
			t.Errorf("Contains(%s) = %v", addr, !want)
		}
	}
	if _, err := ParseCIDRs([]string{"10.0.0.0/33"}); err == nil {
		t.Error("a /33 parsed")
	}
}

func TestLogLevelAcceptsFourNames(t *testing.T) {
	var l LogLevel
	for name, want := range map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError} {
		if err := l.UnmarshalText([]byte(name)); err != nil || l.Level() != want || l.String() != name {
			t.Errorf("%q = %v (%v)", name, l, err)
		}
	}
	for _, bad := range []string{"INFO", "info+2", "trace", ""} {
		if err := l.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestTypedValuesLoadFromEveryForm: the file (quoted, unquoted, lists),
// the environment and JSON lists in the environment all decode to the
// same typed values, and bad text names the key.
func TestTypedValuesLoadFromEveryForm(t *testing.T) {
	file := validYAML + `proxy:
  trusted_proxies: [10.0.0.0/8, 127.0.0.1]
log:
  level: warn
`
	file = strings.Replace(file, "health:\n  interval: 3s", "health:\n  interval: 3s\n  expected_status: 204\n  jitter: 0.2", 1)
	c, err := Load(writeFile(t, file))
	if err != nil {
		t.Fatal(err)
	}
	if c.Health.ExpectedStatus != Statuses(204, 204) || c.Health.Jitter != 0.2 {
		t.Errorf("health from the file: %v %v", c.Health.ExpectedStatus, c.Health.Jitter)
	}
	if c.Proxy.TrustedProxies.String() != "10.0.0.0/8,127.0.0.1/32" || c.Log.Level != LevelWarn {
		t.Errorf("trusted %v level %v", c.Proxy.TrustedProxies, c.Log.Level)
	}

	t.Setenv("SWITCHYARD_HEALTH_EXPECTED_STATUS", "200-204")
	t.Setenv("SWITCHYARD_HEALTH_JITTER", "5%")
	t.Setenv("SWITCHYARD_LOG_LEVEL", "debug")
	t.Setenv("SWITCHYARD_SERVICES", `[{"name":"web","instances":[{"address":"127.0.0.1:1"}],"health":{"expected_status":"200","jitter":0.3}}]`)
	c, err = Load(writeFile(t, file))
	if err != nil {
		t.Fatal(err)
	}
	eff := c.Services[0].Health.Apply(c.Health)
	if c.Health.ExpectedStatus != Statuses(200, 204) || c.Health.Jitter != 0.05 || c.Log.Level != LevelDebug {
		t.Errorf("from the environment: %v %v %v", c.Health.ExpectedStatus, c.Health.Jitter, c.Log.Level)
	}
	if eff.ExpectedStatus != Statuses(200, 200) || eff.Jitter != 0.3 {
		t.Errorf("per service from JSON: %v %v", eff.ExpectedStatus, eff.Jitter)
	}

	t.Setenv("SWITCHYARD_LOG_LEVEL", "loud")
	if _, err := Load(writeFile(t, file)); err == nil || !strings.Contains(err.Error(), "log.level") || !strings.Contains(err.Error(), `"loud"`) {
		t.Errorf("err = %v, want it to name log.level and \"loud\"", err)
	}
}
