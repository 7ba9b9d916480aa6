package rules

import (
	"fmt"
	"slices"
	"strings"

	"github.com/archangel-sandbox/archangel/profiles"
)

// FSAccess is a set of Landlock filesystem rights; the bit values are the
// kernel's LANDLOCK_ACCESS_FS_* (include/uapi/linux/landlock.h).
type FSAccess uint64

const (
	FSExecute    FSAccess = 1 << 0
	FSWriteFile  FSAccess = 1 << 1
	FSReadFile   FSAccess = 1 << 2
	FSReadDir    FSAccess = 1 << 3
	FSRemoveDir  FSAccess = 1 << 4
	FSRemoveFile FSAccess = 1 << 5
	FSMakeChar   FSAccess = 1 << 6
	FSMakeDir    FSAccess = 1 << 7
	FSMakeReg    FSAccess = 1 << 8
	FSMakeSock   FSAccess = 1 << 9
	FSMakeFifo   FSAccess = 1 << 10
	FSMakeBlock  FSAccess = 1 << 11
	FSMakeSym    FSAccess = 1 << 12
	FSRefer      FSAccess = 1 << 13 // ABI 2
	FSTruncate   FSAccess = 1 << 14 // ABI 3

	// The rights of each [files] access.
	FSRead  = FSReadFile | FSReadDir
	FSWrite = FSWriteFile | FSTruncate | FSRemoveDir | FSRemoveFile | FSMakeChar | FSMakeDir | FSMakeReg |
		FSMakeSock | FSMakeFifo | FSMakeBlock | FSMakeSym | FSRefer
	FSExec = FSExecute
)

var fsNames = [...]string{"execute", "write_file", "read_file", "read_dir", "remove_dir", "remove_file",
	"make_char", "make_dir", "make_reg", "make_sock", "make_fifo", "make_block", "make_sym", "refer", "truncate"}

func (a FSAccess) String() string {
	var parts []string
	for i, n := range fsNames {
		if a&(1<<i) != 0 {
			parts = append(parts, n)
		}
	}
	if rest := a &^ (1<<len(fsNames) - 1); rest != 0 {
		parts = append(parts, fmt.Sprintf("%#x", uint64(rest)))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "|")
}

// PlanRule grants Access on Path and everything beneath it
// (LANDLOCK_RULE_PATH_BENEATH).
type PlanRule struct {
	Path   string
	Access FSAccess
	// Exact are the rights of Access that only patterns naming Path itself
	// grant (not a "/**" pattern). Landlock grants beneath a directory, so
	// when Path is a directory the launcher must drop Exact &^ FSReadDir,
	// or the grant is wider than the rules. On a file, directory-only
	// rights are EINVAL and must be dropped as well.
	Exact FSAccess
	Rules []string // the rules that grant it, as in Verdict.Rule
}

// Plan is a Landlock ruleset that enforces the [files] and [exec] allow
// rules in the kernel: Handled are the rights it restricts, Rules what it
// grants. Rights outside Handled are left to the supervisor. Reasons says
// why a class of rights (read, write, exec) is not handled.
type Plan struct {
	Handled FSAccess
	Rules   []PlanRule
	Reasons []string
}

// LandlockPlan returns the plan; false when no class of rights can be
// handled (Plan.Reasons says why).
//
// A class is handled when the [supervisor] default does not allow what no
// rule matches, at least one rule allows that class, and every such allow
// rule is an exact path (read, exec) or a literal prefix followed by
// "/**" (read, write, exec). The plan never refuses what the rules allow
// (up to symlinks and bind mounts: Landlock grants inodes, rules match
// names), so applying it only removes races. It may grant more than the
// rules: [files] deny entries, [[exec.rule]] denies and argv or parent
// conditions cannot be written as Landlock rules and stay with the
// supervisor. When nothing of that kind overlaps an exec grant, the exec
// part is exact and exec allows are RaceFree.
func (s *Set) LandlockPlan() (Plan, bool) {
	p := s.plan
	p.Rules = slices.Clone(p.Rules)
	p.Reasons = slices.Clone(p.Reasons)
	return p, s.planOK
}

func landlockPlan(p *profiles.Profile, s *Set) (plan Plan, ok, execExact bool) {
	switch p.Supervisor.Default {
	case profiles.ActionAllow, profiles.ActionLog:
		plan.Reasons = append(plan.Reasons, fmt.Sprintf("%s: [supervisor] default = %s allows paths no rule matches; Landlock can only allow-list", p.Supervisor.DefaultPos, p.Supervisor.Default))
		return plan, false, false
	}
	grants := map[string]*PlanRule{}
	beneath := map[string]FSAccess{}
	grant := func(path string, a FSAccess, exact bool, text string) {
		g := grants[path]
		if g == nil {
			g = &PlanRule{Path: path}
			grants[path] = g
		}
		g.Access |= a
		if !exact {
			beneath[path] |= a
		}
		g.Exact = g.Access &^ beneath[path]
		g.Rules = append(g.Rules, text)
	}

	classes := []struct {
		name   string
		rights FSAccess
		kinds  []RuleKind
		list   []*pathRule
	}{
		{"read", FSRead, []RuleKind{KindFileRead}, s.read},
		{"write", FSWrite, []RuleKind{KindFileWrite}, s.write},
		{"exec", FSExec, []RuleKind{KindFileExec, KindExecRule}, s.exec},
	}
	for _, c := range classes {
		var allows []*pathRule
		for _, r := range c.list {
			if !r.denies() && slices.Contains(c.kinds, s.infos[r.info].Kind) {
				allows = append(allows, r)
			}
		}
		slices.SortFunc(allows, func(a, b *pathRule) int { return a.info - b.info })
		if len(allows) == 0 {
			plan.Reasons = append(plan.Reasons, fmt.Sprintf("%s: no allow rule; left to the supervisor", c.name))
			continue
		}
		var bad []string
		for _, r := range allows {
			switch {
			case r.glob.shape == shapeSubtree:
			case r.glob.shape == shapeExact && c.name != "write":
			case r.glob.shape == shapeExact:
				bad = append(bad, fmt.Sprintf("%s names one path: Landlock cannot grant creating or removing a file without its whole directory (write %q)", r.text, r.glob.text+"/**"))
			default:
				bad = append(bad, fmt.Sprintf("%s is neither an exact path nor a literal prefix followed by /**", r.text))
			}
		}
		if len(bad) > 0 {
			plan.Reasons = append(plan.Reasons, c.name+": not handled: "+strings.Join(bad, "; "))
			continue
		}
		plan.Handled |= c.rights
		for _, r := range allows {
			grant(r.glob.literal(), c.rights, r.glob.shape == shapeExact, r.text)
		}
		if c.name == "exec" {
			execExact = execPlanExact(s, allows, &plan)
		}
	}
	for _, g := range grants {
		plan.Rules = append(plan.Rules, *g)
	}
	slices.SortFunc(plan.Rules, func(a, b PlanRule) int { return strings.Compare(a.Path, b.Path) })
	return plan, plan.Handled != 0, execExact
}

// execPlanExact reports whether the exec grants allow exactly what the
// rules allow: no allow has conditions Landlock cannot see, and no deny
// that would win can match inside a grant.
func execPlanExact(s *Set, allows []*pathRule, plan *Plan) bool {
	exact := true
	for _, g := range allows {
		if g.cond {
			plan.Reasons = append(plan.Reasons, fmt.Sprintf("exec: inexact: %s has argv or parent conditions; Landlock lets any argv through", g.text))
			exact = false
		}
		for _, d := range s.exec {
			if !d.denies() || d.key < g.key {
				continue
			}
			var overlap bool
			if g.glob.shape == shapeExact {
				overlap = d.glob.match(g.glob.literal())
			} else {
				overlap = d.glob.mayMatchBelow(g.glob.literal())
			}
			if overlap {
				plan.Reasons = append(plan.Reasons, fmt.Sprintf("exec: inexact: %s denies inside %s; the supervisor enforces it", d.text, g.text))
				exact = false
			}
		}
	}
	return exact
}
