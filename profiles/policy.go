package profiles

import (
	"slices"
	"sort"
)

// Policy returns the resolved policy of the system call called name: its
// conditional rules in profile order, and the unconditional action of the
// rule that names it or, when none does, the profile default (Source
// "profile.default"). For a name unknown on x86-64, Nr is -1.
func (p *Profile) Policy(name string) SyscallPolicy {
	nr, ok := SyscallNr(name)
	if !ok {
		nr = -1
	}
	sp := SyscallPolicy{Name: name, Nr: nr, Action: p.Default, Errno: p.DefaultErrno, Pos: p.DefaultPos, Source: "profile.default"}
	if sp.Action == ActionUnset {
		sp.Action, sp.Errno = DefaultAction, DefaultErrno
	}
	for _, r := range p.Rules {
		if !slices.Contains(r.Syscalls, name) {
			continue
		}
		if len(r.Args) > 0 {
			sp.Conds = append(sp.Conds, r)
			continue
		}
		// A loaded profile has one unconditional rule per syscall; for a
		// hand-built one the last rule wins, as a derived profile would.
		sp.Action, sp.Errno, sp.Pos, sp.Source = r.Action, r.Errno, r.Pos, r.Source
	}
	return sp
}

// Policies returns the policy of every system call some rule names, sorted
// by number. Calls no rule names get the profile default (see Policy).
func (p *Profile) Policies() []SyscallPolicy {
	seen := map[string]bool{}
	var names []string
	for _, r := range p.Rules {
		for _, s := range r.Syscalls {
			if !seen[s] {
				seen[s] = true
				names = append(names, s)
			}
		}
	}
	out := make([]SyscallPolicy, 0, len(names))
	for _, n := range names {
		out = append(out, p.Policy(n))
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Nr != out[j].Nr {
			return out[i].Nr < out[j].Nr
		}
		return out[i].Name < out[j].Name
	})
	return out
}
