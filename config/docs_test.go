package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigurationReferenceDocumentsEveryKey: docs/configuration.md has a
// row, with the environment variable, for every key Load accepts.
func TestConfigurationReferenceDocumentsEveryKey(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, k := range Keys() {
		row := "| `" + k + "` | `" + EnvName(k) + "`"
		if !strings.Contains(doc, row) {
			t.Errorf("docs/configuration.md has no row %q...", row)
		}
	}
}
