package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestAnalyzerEvalGRUJSON(t *testing.T) {
	out := runAnalyzer(t, "analyzer", "eval", "--adfa", writeTinyADFA(t), "--model", "gru", "--json")
	var r struct {
		AUC float64 `json:"auc"`
		GRU *struct {
			AUC      float64            `json:"auc"`
			AUCCI    [2]float64         `json:"auc_ci"`
			Grid     []map[string]any   `json:"grid"`
			PerFam   map[string]float64 `json:"per_family"`
			P99      float64            `json:"p99_event_ns"`
			Ensemble struct {
				AUC   float64 `json:"auc"`
				Score string  `json:"score"`
			} `json:"ensemble"`
		} `json:"gru"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out)
	}
	if r.GRU == nil {
		t.Fatalf("no gru object in %s", out)
	}
	if len(r.GRU.Grid) != 9 || len(r.GRU.PerFam) != 2 || r.GRU.P99 <= 0 || r.GRU.Ensemble.Score == "" {
		t.Errorf("gru: %d grid rows (want 9), families %v, p99 %v, ensemble %+v", len(r.GRU.Grid), r.GRU.PerFam, r.GRU.P99, r.GRU.Ensemble)
	}
	// The toy attacks carry syscalls training never saw.
	if r.GRU.AUC < 0.9 || r.GRU.Ensemble.AUC < 0.9 {
		t.Errorf("gru auc %v, ensemble %v on an easy toy set, want >= 0.9", r.GRU.AUC, r.GRU.Ensemble.AUC)
	}
}

func TestAnalyzerEvalModelFlag(t *testing.T) {
	out := runAnalyzer(t, "analyzer", "eval", "--adfa", writeTinyADFA(t), "--json")
	if strings.Contains(out, `"gru"`) {
		t.Errorf("the default (n-gram) report has a gru object:\n%s", out)
	}
	table := runAnalyzer(t, "analyzer", "eval", "--adfa", writeTinyADFA(t), "--model", "gru")
	for _, want := range []string{"GRU LM grid", "ensemble", "<- chosen", "DR Web_Shell"} {
		if !strings.Contains(table, want) {
			t.Errorf("gru table lacks %q:\n%s", want, table)
		}
	}
}
