package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

// writeTinyADFA lays out a miniature ADFA-LD directory.
func writeTinyADFA(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	write := func(rel string, calls string) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(calls), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	normal := func(i int) string {
		var b strings.Builder
		for j := range 40 + i%7 {
			fmt.Fprintf(&b, "%d ", []int{3, 4, 5, 6, 192, 197}[(i+j)%6])
		}
		return b.String()
	}
	for i := range 10 {
		write(fmt.Sprintf("Training_Data_Master/UTD-%04d.txt", i+1), normal(i))
		write(fmt.Sprintf("Validation_Data_Master/UVD-%04d.txt", i+1), normal(i+3))
	}
	for _, fam := range []string{"Adduser_1", "Web_Shell_2"} {
		for i := range 3 {
			write(fmt.Sprintf("Attack_Data_Master/%s/UAD-%s-%d.txt", fam, fam, i), normal(i)+"11 102 102 11 240 ")
		}
	}
	return dir
}

func runAnalyzer(t *testing.T, args ...string) string {
	t.Helper()
	var c struct {
		Globals
		Analyzer analyzerCmd `cmd:""`
	}
	var stdout, stderr bytes.Buffer
	c.stdout, c.stderr = &stdout, &stderr
	p, err := kong.New(&c, kong.Writers(&stdout, &stderr))
	if err != nil {
		t.Fatal(err)
	}
	kctx, err := p.Parse(args)
	if err != nil {
		t.Fatal(err)
	}
	if err := kctx.Run(&c.Globals); err != nil {
		t.Fatalf("%v\nstderr: %s", err, stderr.String())
	}
	return stdout.String()
}

func TestAnalyzerEvalJSON(t *testing.T) {
	dir := writeTinyADFA(t)
	out := runAnalyzer(t, "analyzer", "eval", "--adfa", dir, "--json")
	var r map[string]any
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out)
	}
	for _, k := range []string{"auc", "auc_ci", "dr_at_1fpr", "dr_at_5fpr", "dr_at_10fpr", "far_at_90dr", "auc_dedup", "per_family", "train_seconds", "p50_event_ns", "p99_event_ns", "model_bytes", "grid", "chosen"} {
		if _, ok := r[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	if fams := r["per_family"].(map[string]any); len(fams) != 2 || fams["Web_Shell"] == nil {
		t.Errorf("per_family = %v, want Adduser and Web_Shell", fams)
	}
	if auc := r["auc"].(float64); auc < 0.9 {
		t.Errorf("auc %v on an easy toy set, want >= 0.9", auc)
	}
}

func TestAnalyzerEvalTable(t *testing.T) {
	out := runAnalyzer(t, "analyzer", "eval", "--adfa", writeTinyADFA(t))
	for _, want := range []string{"ROC AUC", "FAR at 90% DR", "<- chosen", "DR Web_Shell"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
