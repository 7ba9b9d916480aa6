package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

const riskData = "../../analyzer/risk/testdata/events.jsonl.gz"

// TestAnalyzerRiskJSON runs the whole evaluation once (the table form is
// exercised by analyzer/risk's TestEvaluateLOTO).
func TestAnalyzerRiskJSON(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"analyzer", "risk", "--data", riskData, "--json", "--reps", "1"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var r map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, stdout.String())
	}
	for _, k := range []string{"records", "techniques", "roc_auc", "pr_auc", "event_recall_at_1e-3", "variant_recall_at_1e-3",
		"threshold", "score_p50_ns", "score_p99_ns", "holdout_roc_auc"} {
		if _, ok := r[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	if techs, _ := r["techniques"].([]any); len(techs) != 8 {
		t.Errorf("%d techniques, want 8", len(techs))
	}
	if p99, _ := r["score_p99_ns"].(float64); p99 <= 0 {
		t.Errorf("score_p99_ns = %v, want a measured latency", r["score_p99_ns"])
	}
}

func TestAnalyzerRiskMissingData(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"analyzer", "risk", "--data", filepath.Join(t.TempDir(), "none.jsonl.gz")}, &stdout, &stderr)
	if code == 0 || !strings.Contains(stderr.String(), "make riskdata") {
		t.Errorf("exit %d, stderr %q: want a failure with the regeneration hint", code, stderr.String())
	}
}
