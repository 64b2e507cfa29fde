package main

import (
	"io"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	defaults := config{
		listen:        "127.0.0.1:9001",
		name:          "backend",
		healthStatus:  200,
		service:       "demo",
		id:            "demo-backend",
		tags:          "switchyard.enable=true",
		checkInterval: 2 * time.Second,
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    func(*config) // applied to defaults
		wantErr bool
	}{
		{name: "defaults"},
		{
			name: "flags",
			args: []string{"--listen", "0.0.0.0:9002", "--name", "blue", "--delay", "50ms", "--health-status", "503", "--consul-register", "--service", "web"},
			want: func(c *config) {
				c.listen, c.name, c.delay, c.healthStatus, c.consulRegister, c.service, c.id = "0.0.0.0:9002", "blue", 50*time.Millisecond, 503, true, "web", "web-blue"
			},
		},
		{
			name: "env fills unset flags",
			env:  map[string]string{"DEMO_NAME": "green", "DEMO_HEALTH_STATUS": "500", "DEMO_CONSUL_REGISTER": "true", "DEMO_CHECK_INTERVAL": "5s"},
			want: func(c *config) {
				c.name, c.healthStatus, c.consulRegister, c.checkInterval, c.id = "green", 500, true, 5*time.Second, "demo-green"
			},
		},
		{
			name: "flag beats env",
			args: []string{"--name", "blue"},
			env:  map[string]string{"DEMO_NAME": "green", "DEMO_ID": "custom"},
			want: func(c *config) { c.name, c.id = "blue", "custom" },
		},
		{name: "empty env ignored", env: map[string]string{"DEMO_NAME": ""}},
		{name: "bad env value", env: map[string]string{"DEMO_DELAY": "soon"}, wantErr: true},
		{name: "bad health status", args: []string{"--health-status", "600"}, wantErr: true},
		{name: "negative delay", args: []string{"--delay", "-1s"}, wantErr: true},
		{name: "unknown flag", args: []string{"--nope"}, wantErr: true},
		{name: "stray argument", args: []string{"extra"}, wantErr: true},
		{name: "zero check interval", args: []string{"--consul-register", "--check-interval", "0s"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parseConfig = %+v, want error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := defaults
			if tt.want != nil {
				tt.want(&want)
			}
			if got != want {
				t.Errorf("parseConfig =\n %+v\nwant\n %+v", got, want)
			}
		})
	}
}
