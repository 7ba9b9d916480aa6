package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/archangel-sandbox/archangel/filter"
	"github.com/archangel-sandbox/archangel/profiles"
	"github.com/archangel-sandbox/archangel/supervisor"
)

type profileReplayCmd struct {
	Events  string `arg:"" help:"A JSON-lines event log (run or learn --events)." type:"existingfile"`
	Profile string `short:"p" required:"" help:"The candidate profile." placeholder:"PROFILE"`
	All     bool   `help:"List every call that would change, not the first 20 of each kind."`
}

// replayEvent is the part of a supervisor.Event that replay needs.
type replayEvent struct {
	Syscall string    `json:"syscall"`
	Nr      int32     `json:"nr"`
	Args    [6]uint64 `json:"args"`
	Verdict string    `json:"verdict"`
	Path    string    `json:"path"`
	Addr    string    `json:"addr"`
	Comm    string    `json:"comm"`
	Kind    string    `json:"kind"`
}

// Run says what the candidate profile would have done to a recorded run:
// which calls it would refuse that ran (tightening that breaks the
// program) and which it would let run that were refused. Only notified
// calls are in a log: what the kernel allowed without asking is judged by
// the candidate's kernel rules when it appears, and not seen otherwise.
func (c *profileReplayCmd) Run(g *Globals) error {
	p, err := profiles.Load(c.Profile)
	if err != nil {
		return &exitStatus{code: 1, err: err}
	}
	set, err := compileRules(p)
	if err != nil {
		return &exitStatus{code: 1, err: err}
	}
	ev := filter.NewEvaluator(p)
	f, err := os.Open(c.Events)
	if err != nil {
		return &exitStatus{code: 1, err: err}
	}
	defer f.Close()
	type key struct{ change, what string }
	counts := map[key]int{}
	total, line := 0, 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line++
		var e replayEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return &exitStatus{code: 1, err: fmt.Errorf("%s:%d: %w", c.Events, line, err)}
		}
		if e.Kind == "sequence" {
			continue // a sequence-model report, not a decision
		}
		total++
		d := filter.Data{Nr: e.Nr, Arch: filter.AuditArchX8664, Args: e.Args}
		v := ev.Eval(filter.Options{Arch: filter.ArchAMD64}, d)
		verdict, why := v.Action, fmt.Sprintf("%s (%s)", v.Source, v.Pos)
		if v.Action == profiles.ActionNotify {
			verdict, why = p.Supervisor.Default, "[supervisor] default"
			if b := supervisor.BuiltinRule(int(e.Nr)); b != "" {
				verdict, why = profiles.ActionAllow, "builtin rule (decided at run time)"
			} else if set != nil && (e.Path != "" || e.Addr != "") {
				call, err := supervisor.ExplainCall(e.Syscall, e.Args, e.Path, strings.TrimPrefix(e.Addr, ""))
				if err == nil {
					if rv := set.Decide(&call, nil); rv.Matched {
						verdict, why = rv.Action, rv.Rule
					}
				}
			}
		}
		ran := e.Verdict == "allow" || e.Verdict == "log"
		runs := verdict == profiles.ActionAllow || verdict == profiles.ActionLog
		if ran == runs {
			continue
		}
		what := e.Syscall
		if e.Path != "" {
			what += " " + e.Path
		}
		if e.Addr != "" {
			what += " " + e.Addr
		}
		what += " by " + e.Comm + ": " + verdict.String() + " by " + why
		change := "would refuse (it ran)"
		if !ran {
			change = "would allow (it was refused)"
		}
		counts[key{change, what}]++
	}
	if err := sc.Err(); err != nil {
		return &exitStatus{code: 1, err: err}
	}
	var keys []key
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].change != keys[j].change {
			return keys[i].change > keys[j].change
		}
		return counts[keys[i]] > counts[keys[j]] || counts[keys[i]] == counts[keys[j]] && keys[i].what < keys[j].what
	})
	fmt.Fprintf(g.stdout, "replayed %d recorded calls against profile %q: %d would change\n", total, p.Name, len(keys))
	shown := map[string]int{}
	for _, k := range keys {
		if shown[k.change]++; !c.All && shown[k.change] > 20 {
			continue
		}
		fmt.Fprintf(g.stdout, "  %s x%d: %s\n", k.change, counts[k], k.what)
	}
	for change, n := range shown {
		if !c.All && n > 20 {
			fmt.Fprintf(g.stdout, "  ... %d more that %s (--all lists them)\n", n-20, change)
		}
	}
	return nil
}
