package examples

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/archangel-sandbox/archangel/filter"
	"github.com/archangel-sandbox/archangel/profiles"
)

func TestSampleProfilesLoadAndCompile(t *testing.T) {
	files, err := filepath.Glob("profiles/*.toml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no sample profiles (%v)", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			p, err := profiles.Load(f)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := filter.Compile(p, filter.Options{Arch: filter.ArchAMD64, Mode: p.Mode}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSystemdUnitNamesASampleProfile(t *testing.T) {
	b, err := os.ReadFile("systemd/archangel-web.service")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "archangel run --profile") {
		t.Fatal("unit does not run archangel")
	}
}
