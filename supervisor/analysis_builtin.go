package supervisor

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/archangel-sandbox/archangel/analyzer"
	"github.com/archangel-sandbox/archangel/analyzer/risk"
	"github.com/archangel-sandbox/archangel/profiles"
)

// riskModel is [analyzer] model = "builtin": the embedded per-event risk
// model (analyzer/risk). A score at or above the model's threshold (set on
// held-out benign events, at most 1 in 1000 of them above it) denies the
// call with EPERM; below it the call is allowed. Verdicts are not cached:
// a score takes microseconds and depends on facts (what the run wrote)
// that change.
type riskModel struct {
	m   *risk.Model
	thr float64
}

func newRiskModel() (localModel, error) {
	m := risk.Default()
	return &riskModel{m: m, thr: m.Threshold()}, nil
}

func (r *riskModel) decide(c *analyzer.Call, f *callFacts) decision {
	ctx := risk.Context{ParentExe: f.ParentExe, Wrote: f.Wrote, StdioSocket: f.StdioSocket, TargetDescendant: targetDescendant(c)}
	p := r.m.Score(c, &ctx)
	d := decision{action: profiles.ActionAllow, source: SourceAnalyzer, layer: SourceAnalyzer, nocache: true}
	if p >= r.thr {
		d.action, d.errno = profiles.ActionErrno, profiles.Errno(unix.EPERM)
		// Only denials say why: Explain allocates, and they are rare.
		d.rule = fmt.Sprintf("analyzer builtin: risk %.3f ≥ %.3f (%s)", p, r.thr, strings.Join(r.m.Explain(c, &ctx), ", "))
	} else {
		d.rule = fmt.Sprintf("analyzer builtin: risk %.3f < %.3f", p, r.thr)
	}
	if f.SeqOK && f.Seq.Anomalous {
		// The sequence model reports; it does not decide. Say so where
		// the call is recorded.
		d.rule += fmt.Sprintf("; thread anomalous to the sequence model (%.2f > %.2f)", f.Seq.Score, f.Seq.Threshold)
	}
	return d
}

// targetDescendant reports, for calls that act on another process by PID,
// whether the target descends from the caller.
func targetDescendant(c *analyzer.Call) bool {
	var target int
	switch c.Name {
	case "ptrace":
		target = int(int32(c.Args[1]))
	case "process_vm_readv", "process_vm_writev", "pidfd_open", "kill", "tgkill":
		target = int(int32(c.Args[0]))
		if c.Name == "tgkill" {
			target = int(int32(c.Args[1]))
		}
	default:
		return false
	}
	return target > 0 && isDescendant(tgidOf(target), c.Process.PID)
}
