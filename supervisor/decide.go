package supervisor

import (
	"github.com/archangel-sandbox/archangel/filter"
	"github.com/archangel-sandbox/archangel/internal/kernel"
	"github.com/archangel-sandbox/archangel/profiles"
)

// Source names the layer that decided a notification.
type Source int

const (
	SourceRule      Source = iota // a syscall rule of the profile (in audit mode: what enforce would do)
	SourceDefault                 // [supervisor] default: no rule decided the notified call
	SourceCache                   // the decision cache (the layer that filled it is kept too)
	SourceUndecided               // nothing could decide: fail closed
	SourcePattern                 // a multi-event behaviour pattern (supervisor/patterns)
	SourceAnalyzer                // the model tier, within its budget (or from its cache)
	SourceTimeout                 // the model tier's on_timeout verdict: no verdict within the budget
	SourceLearned                 // a verdict the model reached in earlier runs (the profile's learned overlay, learned.go)
	SourceSequence                // the sequence model found the calling thread anomalous ([analyzer] sequence = "deny" or "kill")
	numSources
)

var sourceNames = [...]string{"rule", "default", "cache", "undecided", "pattern", "analyzer", "timeout", "learned", "sequence"}

func (s Source) String() string {
	if s >= 0 && int(s) < len(sourceNames) {
		return sourceNames[s]
	}
	return "unknown"
}

// decision is a verdict with where it came from.
type decision struct {
	action profiles.Action
	errno  profiles.Errno
	source Source       // the layer that decided (SourceCache on a hit)
	layer  Source       // the layer that decided originally
	pos    profiles.Pos // where the deciding rule was written (zero for the supervisor default)
	rule   string       // which rule: "syscalls.deny", "files.deny[2] ..."; "" for the default

	// nocache marks a verdict that is not a function of the cache key
	// (it depends on the process tree, a path, history).
	nocache bool
	// modelWouldDeny: the model tier denied the call, but runs with
	// [analyzer] mode = "audit", so the [supervisor] default decided.
	modelWouldDeny bool
	// pointer: the verdict depends on target memory; decode the call and
	// ask the rules (Supervisor.decideCall).
	pointer bool
}

// decider turns a notification into a decision: cache, then the profile's
// syscall rules, then the supervisor default.
type decider struct {
	profile   *profiles.Profile
	eval      *filter.Evaluator
	paths     *pathRules // nil: the profile has no [files]/[network]/[exec] rules
	decodeAll bool       // patterns watch every notified call: decode them all
	analysis  bool       // a model decides notified calls no rule decides: decode them for it
	mode      profiles.Mode
	cache     *decisionCache
	def       decision
}

func newDecider(p *profiles.Profile, mode profiles.Mode, size int) *decider {
	d := &decider{profile: p, eval: filter.NewEvaluator(p), mode: mode, cache: newDecisionCache(size)}
	d.def = decision{action: p.Supervisor.Default, errno: p.Supervisor.DefaultErrno, source: SourceDefault, layer: SourceDefault}
	switch d.def.action {
	case profiles.ActionAllow, profiles.ActionLog, profiles.ActionErrno, profiles.ActionKill:
	default:
		// Unset or nonsensical: deny, never allow by accident.
		d.def.action, d.def.errno = profiles.ActionErrno, profiles.Errno(1) // EPERM
	}
	if d.def.action == profiles.ActionErrno && d.def.errno == 0 {
		d.def.errno = 1
	}
	return d
}

// decide returns the verdict for n. It reads no target memory: every
// verdict here depends on the architecture, the syscall number and the
// scalar argument words only, which is what makes CONTINUE safe for an
// allow and the cache exact.
func (d *decider) decide(n *kernel.Notif) decision {
	k := cacheKey{arch: n.Data.Arch, nr: n.Data.Nr, args: n.Data.Args}
	if v, ok := d.cache.get(&k); ok {
		v.source = SourceCache
		return v
	}
	v := d.decideUncached(n)
	if v.layer != SourceUndecided && !v.nocache {
		d.cache.put(&k, v)
	}
	return v
}

func (d *decider) decideUncached(n *kernel.Notif) decision {
	data := filter.Data{Nr: n.Data.Nr, Arch: n.Data.Arch, IP: n.Data.IP, Args: n.Data.Args}
	// What the profile says for this call in enforce mode. In audit mode the
	// kernel notified a call it would have denied or killed; this is the
	// verdict to record.
	v := d.eval.Eval(filter.Options{Arch: filter.ArchAMD64, Mode: profiles.ModeEnforce}, data)
	switch v.Action {
	case profiles.ActionNotify:
		if r, ok := relationVerdict(n); ok {
			return r
		}
		if d.decodeAll || d.analysis || d.paths.needsCall(n.Data.Nr) {
			return decision{pointer: true, nocache: true, layer: SourceRule}
		}
		return d.def
	case profiles.ActionAllow, profiles.ActionLog, profiles.ActionErrno, profiles.ActionKill:
		return decision{action: v.Action, errno: v.Errno, source: SourceRule, layer: SourceRule, pos: v.Pos, rule: v.Source}
	}
	return decision{action: profiles.ActionErrno, errno: 1, source: SourceUndecided, layer: SourceUndecided}
}
