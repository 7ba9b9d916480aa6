package profiles

import (
	"fmt"
	"slices"
	"strings"
)

// checkProfile runs the checks that need the whole resolved profile: the
// launcher's system calls, alias families, io_uring, the analyzer.
func checkProfile(p *Profile, l *layer, errs *errList) {
	checkLauncher(p, errs)
	checkFamilies(p, l.file, errs)
	checkIOUring(p, errs)
	switch {
	case p.Analyzer.Model == "http" && p.Analyzer.Endpoint == "":
		errs.add(l.modelPos, "set analyzer.endpoint to a loopback URL, e.g. \"http://127.0.0.1:8900/v1/score\"",
			"analyzer.model = \"http\" needs an endpoint")
	case p.Analyzer.Model == "chat" && p.Analyzer.Endpoint == "":
		errs.add(l.modelPos, "set analyzer.endpoint to a local OpenAI-compatible server, e.g. \"http://127.0.0.1:8080/v1/chat/completions\"",
			"analyzer.model = \"chat\" needs an endpoint")
	case p.Analyzer.Model == "chat" && p.Analyzer.ChatModel == "":
		errs.add(l.modelPos, "set analyzer.chat_model to the name the server knows the model by, e.g. \"qwen2.5-7b-instruct\"",
			"analyzer.model = \"chat\" needs chat_model")
	}
}

// defaultDecider describes the profile default, for messages.
func defaultDecider(sp SyscallPolicy, p *Profile) string {
	if p.DefaultPos.Col == 0 {
		return fmt.Sprintf("the profile default (%s, not set)", sp.Action)
	}
	return "profile.default"
}

type decision struct {
	pos    Pos
	what   string // decider text
	action Action
	list   string
}

// groupNames collects syscalls by the decision that concerns them, in
// first-seen order, so one message covers all the calls one rule decides.
type byDecision struct {
	order []decision
	names map[decision][]string
}

func (b *byDecision) add(d decision, name string) {
	if b.names == nil {
		b.names = map[decision][]string{}
	}
	if _, ok := b.names[d]; !ok {
		b.order = append(b.order, d)
	}
	b.names[d] = append(b.names[d], name)
}

func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func ruleDecider(r Rule) string {
	if r.Entry != "" {
		return fmt.Sprintf("%q in %s", r.Entry, r.Source)
	}
	return r.Source
}

func policyDecision(sp SyscallPolicy, p *Profile) decision {
	d := decision{pos: sp.Pos, action: sp.Action, list: sp.Source}
	if sp.Source == "profile.default" {
		d.what = defaultDecider(sp, p)
		return d
	}
	for _, r := range p.Rules {
		if len(r.Args) == 0 && r.Pos == sp.Pos && r.Source == sp.Source && slices.Contains(r.Syscalls, sp.Name) {
			d.what = ruleDecider(r)
		}
	}
	if d.what == "" {
		d.what = sp.Source
	}
	return d
}

func launcherOK(name string, a Action) bool {
	return a.runs() || (name == "execve" && a == ActionNotify)
}

func consequence(a Action) string {
	switch a {
	case ActionNotify:
		return "the launch would hang: the supervisor does not have the listener yet"
	case ActionKill:
		return "the launcher would be killed"
	}
	return "the launch would fail"
}

func checkLauncher(p *Profile, errs *errList) {
	var b byDecision
	for _, s := range LauncherSyscalls {
		sp := p.Policy(s)
		if !launcherOK(s, sp.Action) {
			b.add(policyDecision(sp, p), s)
		}
		for _, c := range sp.Conds {
			if !launcherOK(s, c.Action) {
				b.add(decision{pos: c.Pos, what: c.Source, action: c.Action, list: c.Source}, s)
			}
		}
	}
	for _, d := range b.order {
		names := b.names[d]
		errs.add(d.pos, fmt.Sprintf("add %s to syscalls.allow (or allow = [\"@launcher\"]); an explicit name beats groups", quoteAll(names)),
			"launcher %s %s %s %s by %s: archangel's launcher calls %s after it loads the filter and before it execs the command, so %s",
			plural(len(names), "syscall", "syscalls"), quoteAll(names), plural(len(names), "is", "are"),
			d.action.verb(), d.what, plural(len(names), "it", "them"), consequence(d.action))
	}
}

// checkFamilies reports alias families where a member is guarded by a
// rule (notify, deny or kill; a profile default guards nothing on purpose)
// while another runs unguarded (allow or log, by a rule or the default).
// The error sits at whichever of the two was written in the file being
// loaded, preferring the open member.
func checkFamilies(p *Profile, top string, errs *errList) {
	for _, fam := range aliasFamilies {
		var guard *SyscallPolicy
		for _, s := range fam {
			sp := p.Policy(s)
			if sp.Source != "profile.default" && !sp.Action.runs() {
				guard = &sp
				break
			}
		}
		if guard == nil {
			continue
		}
		gd := policyDecision(*guard, p)
		var b byDecision
		for _, s := range fam {
			sp := p.Policy(s)
			if sp.Action.runs() {
				b.add(policyDecision(sp, p), s)
			}
		}
		for _, od := range b.order {
			names := b.names[od]
			pos := od.pos
			if od.pos.File != top && gd.pos.File == top {
				pos = gd.pos
			}
			errs.add(pos, fmt.Sprintf("add %s to %s too: %s are guarded together", quoteAll(names), guard.Source, strings.Join(fam, ", ")),
				"%q is %s by %s (%s) but its %s %s %s %s by %s (%s): a program can call %s to get around the guard",
				guard.Name, guard.Action.verb(), gd.what, gd.pos, plural(len(names), "alias", "aliases"), quoteAll(names),
				plural(len(names), "is", "are"), od.action.verb(), od.what, od.pos, plural(len(names), "it", "them"))
		}
	}
}

func checkIOUring(p *Profile, errs *errList) {
	if p.IOUring {
		return
	}
	var b byDecision
	for _, s := range []string{"io_uring_setup", "io_uring_enter", "io_uring_register"} {
		sp := p.Policy(s)
		if sp.Action.runs() || sp.Action == ActionNotify {
			b.add(policyDecision(sp, p), s)
		}
		for _, c := range sp.Conds {
			if c.Action.runs() || c.Action == ActionNotify {
				b.add(decision{pos: c.Pos, what: c.Source, action: c.Action}, s)
			}
		}
	}
	for _, d := range b.order {
		names := b.names[d]
		errs.add(d.pos, "deny them (deny = [\"@io-uring\"]), or set io_uring = true in [profile] if the program needs io_uring and you accept that",
			"%s %s %s by %s without io_uring = true: io_uring performs system calls the filter never sees",
			quoteAll(names), plural(len(names), "is", "are"), d.action.verb(), d.what)
	}
}
