package main

import (
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
}

func (c *analyzerEvalCmd) Run(g *Globals) error {
	opt := analyzer.EvalOptions{Model: c.Model}
	if c.Progress {
		opt.ProgressTo = g.stderr
	}
	return analyzer.RunADFAEvalOptions(c.ADFA, g.stdout, c.JSON, opt)
}
