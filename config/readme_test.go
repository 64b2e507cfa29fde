package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestREADMEDocumentsEveryKey(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, k := range Keys() {
		row := "| `" + k + "` | `" + EnvName(k) + "`"
		if !strings.Contains(readme, row) {
			t.Errorf("README.md has no row %q...", row)
		}
	}
}
