package main

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/archangel-sandbox/archangel/analyzer/risk"
)

// analyzerRiskCmd is `archangel analyzer risk [--data FILE] [--json]`: the
// per-event risk model's leave-one-technique-out evaluation on its dataset,
// and the embedded model's threshold and Score latency.
type analyzerRiskCmd struct {
	Data string `help:"Risk dataset (gzip JSON lines, written by scripts/riskdata/generate.sh)." default:"analyzer/risk/testdata/events.jsonl.gz" type:"path" placeholder:"FILE"`
	JSON bool   `help:"Print one JSON object (stable field names) instead of the table."`
	Reps int    `help:"Score calls per event timed together (best of 5 such trials) for the latency figures." default:"40"`
}

func (c *analyzerRiskCmd) Run(g *Globals) error {
	recs, err := risk.ReadDataset(c.Data)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("analyzer risk: %w\n\thint: run from the repository root, or give --data; `make riskdata` regenerates it", err)
	}
	if err != nil {
		return fmt.Errorf("analyzer risk: %w", err)
	}
	rep := risk.Evaluate(recs, risk.DefaultTrainConfig)
	risk.MeasureModel(risk.Default(), recs, &rep, max(c.Reps, 1))
	return rep.Print(g.stdout, c.JSON)
}
