package main

import (
	"github.com/archangel-sandbox/archangel/analyzer"
)

// analyzerCmd is `archangel analyzer ...`: offline work on the model tier.
type analyzerCmd struct {
	Eval analyzerEvalCmd `cmd:"" help:"Evaluate the sequence model on ADFA-LD (train on Training, calibrate on even Validation files, test on odd ones and the attacks)."`
}

// analyzerEvalCmd is `archangel analyzer eval --adfa DIR [--json]`.
type analyzerEvalCmd struct {
	ADFA string `name:"adfa" required:"" type:"existingdir" placeholder:"DIR" help:"ADFA-LD directory (holding Training_Data_Master, Validation_Data_Master, Attack_Data_Master)."`
	JSON bool   `help:"Print one JSON object (stable field names) instead of the table."`
}

func (c *analyzerEvalCmd) Run(g *Globals) error {
	return analyzer.RunADFAEval(c.ADFA, g.stdout, c.JSON)
}
