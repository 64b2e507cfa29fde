package dockertest

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/switchyard-gw/switchyard/internal/testenv"
)

func TestPublishedPortsAreThoseOfTheComposeFiles(t *testing.T) {
	root := testenv.RepoRoot(t)
	for _, tc := range []struct {
		file string
		want []int
	}{
		{"docker-compose.yml", []int{8500, 16686, 4317, 4318, 9001, 9002, 9003, 8080, 9901}},
		{"deployments/docker-compose.ha.yml", []int{8500, 8081, 9911, 8082, 9912}},
	} {
		got, err := PublishedPorts(filepath.Join(root, tc.file))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s publishes %v, want %v", tc.file, got, tc.want)
		}
	}
}
