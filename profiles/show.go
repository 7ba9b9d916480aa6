package profiles

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// MarshalTOML writes p, resolved, as one self-contained profile document
// (see WriteTOML).
func (p *Profile) MarshalTOML() ([]byte, error) {
	var b bytes.Buffer
	if err := p.WriteTOML(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// WriteTOML writes p as a profile document that needs no base: extends
// already applied, so there is no extends key; every group expanded to the
// system call names it resolved to (a group in the output would be
// re-resolved against the current group table, and explicit names make the
// output exact); each unconditional rule's names under a comment naming the
// file:line and list entry it came from. Parse of the output gives a
// profile with the same Policies (actions, errnos, conditional rules),
// path, network, exec, supervisor and analyzer settings.
//
// The implicit io_uring deny (Source "profile.io_uring") is not written:
// Parse re-creates it from io_uring = false. [syscalls] has one errno for its deny list: deny
// rules with another errno are written as [[syscalls.rule]] entries whose
// only condition is always true (arg0 & 0 == 0), which decides the same
// for every call but shows up in Policy as a conditional rule.
func (p *Profile) WriteTOML(w io.Writer) error {
	return writeTOML(w, p, nil)
}

// alwaysTrue is a condition every call satisfies: arg0 & 0 == 0.
var alwaysTrue = ArgCond{Index: 0, Op: OpMaskedEq, Mask: 0, Value: 0}

func writeTOML(w io.Writer, p *Profile, header []string) error {
	tw := &tomlWriter{}
	tw.line("# Profile %q, resolved by archangel (extends applied, groups expanded).", p.Name)
	if len(p.Sources) > 0 {
		tw.line("# Sources, base first: %s", strings.Join(p.Sources, ", "))
	}
	for _, h := range header {
		if h == "" {
			tw.line("#")
			continue
		}
		tw.line("# %s", h)
	}
	tw.line("")
	tw.line("[profile]")
	tw.line("name = %s", tomlQuote(p.Name))
	if p.Description != "" {
		tw.line("description = %s", tomlQuote(p.Description))
	}
	def, defErrno := p.Default, p.DefaultErrno
	if def == ActionUnset {
		def, defErrno = DefaultAction, DefaultErrno
	}
	tw.line("default = %s # %s", tomlQuote(def.String()), posText(p.DefaultPos))
	if def == ActionErrno {
		tw.line("errno = %s", tomlQuote(defErrno.String()))
	}
	tw.line("mode = %s", tomlQuote(p.Mode.String()))
	tw.line("io_uring = %t", p.IOUring)

	// Unconditional rules per list, in profile order.
	var uncond, conds []Rule
	for _, r := range p.Rules {
		switch {
		case len(r.Syscalls) == 0 || r.Source == "profile.io_uring":
		case len(r.Args) == 0:
			uncond = append(uncond, r)
		default:
			conds = append(conds, r)
		}
	}
	denyErrno := Errno(0)
	count := map[Errno]int{}
	for _, r := range uncond {
		if r.Action == ActionErrno {
			count[r.Errno] += len(r.Syscalls)
			if denyErrno == 0 || count[r.Errno] > count[denyErrno] {
				denyErrno = r.Errno
			}
		}
	}
	var extra []Rule // deny rules with another errno
	tw.line("")
	tw.line("[syscalls]")
	for _, la := range []Action{ActionAllow, ActionLog, ActionNotify, ActionErrno, ActionKill} {
		var rs []Rule
		for _, r := range uncond {
			if r.Action != la {
				continue
			}
			if la == ActionErrno && r.Errno != denyErrno {
				r.Args = []ArgCond{alwaysTrue}
				extra = append(extra, r)
				continue
			}
			rs = append(rs, r)
		}
		if len(rs) == 0 {
			continue
		}
		if la == ActionErrno {
			tw.line("errno = %s", tomlQuote(denyErrno.String()))
		}
		key := la.String()
		tw.line("%s = [", key)
		for _, r := range rs {
			tw.line("    # %s", ruleOrigin(r))
			if r.Learned != nil {
				tw.line("    # learned: %s", r.Learned.Summary())
			}
			tw.names(r.Syscalls)
		}
		tw.line("]")
	}
	for _, r := range append(conds, extra...) {
		tw.line("")
		tw.line("# %s", ruleOrigin(r))
		if r.Learned != nil {
			tw.line("# learned: %s", r.Learned.Summary())
		}
		if len(r.Args) == 1 && r.Args[0] == alwaysTrue {
			tw.line("# (always true: [syscalls] has one deny errno, %s)", denyErrno)
		}
		tw.line("[[syscalls.rule]]")
		if names := tomlStrings(r.Syscalls); len(names) <= 70 {
			tw.line("names = %s", names)
		} else {
			tw.line("names = [")
			tw.names(r.Syscalls)
			tw.line("]")
		}
		tw.line("action = %s", tomlQuote(r.Action.String()))
		if r.Action == ActionErrno {
			tw.line("errno = %s", tomlQuote(r.Errno.String()))
		}
		var args []string
		for _, a := range r.Args {
			s := fmt.Sprintf("{ index = %d, op = %s", a.Index, tomlQuote(a.Op.String()))
			if a.Op == OpMaskedEq {
				s += ", mask = " + tomlUint(a.Mask)
			}
			args = append(args, s+", value = "+tomlUint(a.Value)+" }")
		}
		tw.line("args = [%s]", strings.Join(args, ", "))
	}

	writeLearned(tw, p.Learned)

	f := p.Files
	if len(f.Read)+len(f.Write)+len(f.Exec)+len(f.Deny) > 0 {
		tw.line("")
		tw.line("[files]")
		for _, l := range []struct {
			key string
			ps  []Pattern
		}{{"read", f.Read}, {"write", f.Write}, {"exec", f.Exec}, {"deny", f.Deny}} {
			if len(l.ps) == 0 {
				continue
			}
			tw.line("%s = [", l.key)
			for _, pt := range l.ps {
				tw.line("    %s, # %s", tomlQuote(pt.Text), posText(pt.Pos))
			}
			tw.line("]")
		}
	}
	n := p.Network
	if len(n.Connect)+len(n.Bind)+len(n.Deny) > 0 {
		tw.line("")
		tw.line("[network]")
		for _, l := range []struct {
			key string
			es  []Endpoint
		}{{"connect", n.Connect}, {"bind", n.Bind}, {"deny", n.Deny}} {
			if len(l.es) == 0 {
				continue
			}
			tw.line("%s = [", l.key)
			for _, e := range l.es {
				tw.line("    %s, # %s", tomlQuote(e.Text), posText(e.Pos))
			}
			tw.line("]")
		}
	}
	for _, er := range p.Exec.Rules {
		tw.line("")
		tw.line("# %s", posText(er.Pos))
		tw.line("[[exec.rule]]")
		tw.line("path = %s", tomlQuote(er.Path.Text))
		if len(er.Argv) > 0 {
			tw.line("argv = %s", tomlStrings(er.Argv))
		}
		if len(er.Parent) > 0 {
			tw.line("parent = %s", tomlStrings(er.Parent))
		}
		tw.line("action = %s", tomlQuote(er.Action.String()))
	}

	s := p.Supervisor
	tw.line("")
	tw.line("[supervisor]")
	sd, se := s.Default, s.DefaultErrno
	if sd == ActionUnset {
		sd, se = DefaultSupervisor, DefaultErrno
	}
	tw.line("default = %s", tomlQuote(sd.String()))
	if sd == ActionErrno {
		if se == 0 {
			se = DefaultErrno
		}
		tw.line("errno = %s", tomlQuote(se.String()))
	}
	if s.CacheSize != 0 {
		tw.line("cache_size = %d", s.CacheSize)
	}
	if s.Advisory != nil {
		tw.line("advisory = %s", tomlStrings(s.Advisory))
	}
	tw.line("patterns = %t", s.Patterns)

	a := p.Analyzer
	tw.line("")
	tw.line("[analyzer]")
	if a.Model != "" {
		tw.line("model = %s", tomlQuote(a.Model))
	}
	if a.Budget > 0 && a.BudgetSet {
		tw.line("budget = %s", tomlQuote(strings.ReplaceAll(a.Budget.String(), "µ", "u")))
	}
	if a.OnTimeout != ActionUnset && a.OnTimeoutSet {
		tw.line("on_timeout = %s", tomlQuote(a.OnTimeout.String()))
	}
	if a.Endpoint != "" {
		tw.line("endpoint = %s", tomlQuote(a.Endpoint))
	}
	if a.Audit {
		tw.line("mode = \"audit\"")
	}
	if a.Sequence != "" {
		tw.line("sequence = %s", tomlQuote(a.Sequence))
	}
	if a.ChatModel != "" {
		tw.line("chat_model = %s", tomlQuote(a.ChatModel))
	}
	_, err := w.Write(tw.b.Bytes())
	return err
}

// writeLearned lists the overlay's path and address verdicts as comments:
// the supervisor answers them ahead of the model, so they have no TOML form
// in a profile.
func writeLearned(tw *tomlWriter, vs []LearnedVerdict) {
	if len(vs) == 0 {
		return
	}
	tw.line("")
	tw.line("# Learned verdicts on paths and addresses, answered by the supervisor ahead of the model:")
	for _, v := range vs {
		tw.line("#   %s %s", v.verdictText(), v.What())
		tw.line("#     learned: %s (%s)", v.Summary(), posText(v.Pos))
	}
}

type tomlWriter struct{ b bytes.Buffer }

func (t *tomlWriter) line(format string, args ...any) {
	fmt.Fprintf(&t.b, format, args...)
	t.b.WriteByte('\n')
}

// names writes quoted names, several to a line, inside an array.
func (t *tomlWriter) names(names []string) {
	var cur strings.Builder
	for _, n := range names {
		q := tomlQuote(n) + ","
		if cur.Len() > 0 && cur.Len()+1+len(q) > 76 {
			t.line("    %s", cur.String())
			cur.Reset()
		}
		if cur.Len() > 0 {
			cur.WriteByte(' ')
		}
		cur.WriteString(q)
	}
	if cur.Len() > 0 {
		t.line("    %s", cur.String())
	}
}

// ruleOrigin names where a rule was written: "default.toml:27:5
// syscalls.allow "@launcher" (profile default)".
func ruleOrigin(r Rule) string {
	s := posText(r.Pos) + " " + r.Source
	if r.Entry != "" {
		s += " " + strconv.Quote(r.Entry)
	}
	if r.Profile != "" {
		s += " (profile " + r.Profile + ")"
	}
	return s
}

// posText is Pos.String without a line 0 ("file" rather than "file:0").
func posText(p Pos) string {
	if p.File != "" && p.Line == 0 {
		return p.File
	}
	return p.String()
}

func tomlUint(v uint64) string {
	if v <= math.MaxInt64 {
		return fmt.Sprintf("%#x", v)
	}
	return fmt.Sprintf("\"%#x\"", v) // beyond TOML's int64: a string (see argValue)
}

func tomlStrings(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = tomlQuote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// tomlQuote writes s as a TOML basic string.
func tomlQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// sameConds reports whether two policies' conditional rules decide alike:
// same order, conditions and verdicts.
func sameConds(a, b []Rule) bool {
	return slices.EqualFunc(a, b, func(x, y Rule) bool {
		return x.Action == y.Action && x.Errno == y.Errno && slices.Equal(x.Args, y.Args)
	})
}
