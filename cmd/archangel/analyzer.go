package main

import (
	"fmt"
	"strings"

	"github.com/archangel-sandbox/archangel/analyzer"
)

// analyzerCmd is `archangel analyzer ...`: offline work on the model tier.
type analyzerCmd struct {
	Eval analyzerEvalCmd `cmd:"" help:"Evaluate the sequence model on ADFA-LD (train on Training, calibrate on even Validation files, test on odd ones and the attacks)."`
	Risk analyzerRiskCmd `cmd:"" help:"Evaluate the per-event risk model leave-one-technique-out on its dataset; time Score."`
}

// analyzerEvalCmd is `archangel analyzer eval --adfa DIR [--json]`.
type analyzerEvalCmd struct {
	ADFA string `name:"adfa" required:"" type:"existingdir" placeholder:"DIR" help:"ADFA-LD directory (holding Training_Data_Master, Validation_Data_Master, Attack_Data_Master)."`
	JSON bool   `help:"Print one JSON object (stable field names) instead of the table."`

	Model    analyzer.EvalModel `default:"ngram" placeholder:"ngram|gru" help:"ngram: the n-gram LM alone; gru: also train the GRU LM (minutes) and report it and the GRU+n-gram ensemble (the \"gru\" object)."`
	Progress bool               `help:"Print the hyperparameter grids and training epochs on stderr as they run."`
	GRUSeeds int                `name:"gru-seeds" default:"1" help:"With --model gru: also train the chosen setting from this many seeds and report their ensemble (mean of the mean NLLs)."`
	GRUGrid  string             `name:"gru-grid" placeholder:"EMBED/HIDDEN/LR,..." help:"With --model gru: the settings to choose from by held-out NLL instead of the built-in grid, e.g. 32/128/0.003."`
}

func (c *analyzerEvalCmd) Run(g *Globals) error {
	opt := analyzer.EvalOptions{Model: c.Model, GRUSeeds: c.GRUSeeds}
	for _, s := range strings.Split(c.GRUGrid, ",") {
		if s == "" {
			continue
		}
		var e, h int
		var lr float64
		if n, err := fmt.Sscanf(s, "%d/%d/%g", &e, &h, &lr); n != 3 || err != nil {
			return &exitStatus{code: 2, err: fmt.Errorf("--gru-grid %q: want EMBED/HIDDEN/LR, e.g. 32/128/0.003", s)}
		}
		opt.GRUGrid = append(opt.GRUGrid, analyzer.DefaultGRUConfig(e, h, lr))
	}
	if c.Progress {
		opt.ProgressTo = g.stderr
	}
	return analyzer.RunADFAEvalOptions(c.ADFA, g.stdout, c.JSON, opt)
}
