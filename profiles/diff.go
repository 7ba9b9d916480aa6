package profiles

import (
	"fmt"
	"slices"
	"strings"
)

// Change is one difference between two profiles, A and B, as Diff reports
// it: what B decides differently from A.
type Change struct {
	Section string // "profile", "syscalls", "files.read", "network.connect", "exec", "supervisor", "analyzer"
	Subject string // the system call, pattern, endpoint or key
	Nr      int    // system call number for Section "syscalls"; -1 otherwise
	Text    string // "notify → deny (stricter; B web.toml:12)", "added (B web.toml:30)"
}

// String writes "ptrace: notify → deny (stricter; B web.toml:12)" for a
// system call and "files.read /usr/**: added (B web.toml:30)" otherwise.
func (c Change) String() string {
	if c.Section == "syscalls" {
		return c.Subject + ": " + c.Text
	}
	if c.Subject == "" {
		return c.Section + ": " + c.Text
	}
	return c.Section + " " + c.Subject + ": " + c.Text
}

func verdictWords(a Action, e Errno) string {
	if a == ActionErrno {
		return "deny " + e.String()
	}
	return a.String()
}

func direction(a, b Action) string {
	switch {
	case b.strictness() > a.strictness():
		return "stricter"
	case b.strictness() < a.strictness():
		return "looser"
	}
	return "same strictness"
}

// Diff lists what B decides differently from A: per x86-64 system call
// (by number) a changed unconditional verdict ("ptrace: notify → deny
// (stricter; B web.toml:12)") or changed conditional rules; [profile]
// default, mode and io_uring; [files] and [network] entries added or
// removed (by text); [[exec.rule]]s added or removed; [supervisor] and
// [analyzer] settings. Sorted by section, then system call number or
// subject: deterministic.
func Diff(a, b *Profile) []Change {
	var out []Change
	add := func(section, subject, format string, args ...any) {
		out = append(out, Change{Section: section, Subject: subject, Nr: -1, Text: fmt.Sprintf(format, args...)})
	}
	if da, db := verdictWords(a.Default, a.DefaultErrno), verdictWords(b.Default, b.DefaultErrno); da != db {
		add("profile", "default", "%s → %s (%s; B %s)", da, db, direction(a.Default, b.Default), posText(b.DefaultPos))
	}
	if a.Mode != b.Mode {
		add("profile", "mode", "%s → %s", a.Mode, b.Mode)
	}
	if a.IOUring != b.IOUring {
		add("profile", "io_uring", "%t → %t", a.IOUring, b.IOUring)
	}
	for _, name := range SyscallNames() {
		pa, pb := a.Policy(name), b.Policy(name)
		var parts []string
		if pa.Action != pb.Action || pa.Errno != pb.Errno {
			parts = append(parts, fmt.Sprintf("%s → %s (%s; B %s %s)", verdictWords(pa.Action, pa.Errno), verdictWords(pb.Action, pb.Errno),
				direction(pa.Action, pb.Action), posText(pb.Pos), pb.Source))
		}
		if !sameConds(pa.Conds, pb.Conds) {
			s := fmt.Sprintf("conditional rules changed (A: %d, B: %d", len(pa.Conds), len(pb.Conds))
			if len(pb.Conds) > 0 {
				s += "; B " + posText(pb.Conds[0].Pos)
			}
			parts = append(parts, s+")")
		}
		if len(parts) > 0 {
			out = append(out, Change{Section: "syscalls", Subject: name, Nr: pa.Nr, Text: strings.Join(parts, "; ")})
		}
	}
	patterns := func(section string, pa, pb []Pattern) {
		diffTexts(section, texts(pa), texts(pb), func(i int) Pos { return pa[i].Pos }, func(i int) Pos { return pb[i].Pos }, add)
	}
	patterns("files.read", a.Files.Read, b.Files.Read)
	patterns("files.write", a.Files.Write, b.Files.Write)
	patterns("files.exec", a.Files.Exec, b.Files.Exec)
	patterns("files.deny", a.Files.Deny, b.Files.Deny)
	endpoints := func(section string, ea, eb []Endpoint) {
		ta, tb := make([]string, len(ea)), make([]string, len(eb))
		for i, e := range ea {
			ta[i] = e.Text
		}
		for i, e := range eb {
			tb[i] = e.Text
		}
		diffTexts(section, ta, tb, func(i int) Pos { return ea[i].Pos }, func(i int) Pos { return eb[i].Pos }, add)
	}
	endpoints("network.connect", a.Network.Connect, b.Network.Connect)
	endpoints("network.bind", a.Network.Bind, b.Network.Bind)
	endpoints("network.deny", a.Network.Deny, b.Network.Deny)
	execText := func(r ExecRule) string {
		s := r.Path.Text + " " + r.Action.String()
		if len(r.Argv) > 0 {
			s += " argv=" + strings.Join(r.Argv, " ")
		}
		if len(r.Parent) > 0 {
			s += " parent=" + strings.Join(r.Parent, ",")
		}
		return s
	}
	xa, xb := make([]string, len(a.Exec.Rules)), make([]string, len(b.Exec.Rules))
	for i, r := range a.Exec.Rules {
		xa[i] = execText(r)
	}
	for i, r := range b.Exec.Rules {
		xb[i] = execText(r)
	}
	diffTexts("exec.rule", xa, xb, func(i int) Pos { return a.Exec.Rules[i].Pos }, func(i int) Pos { return b.Exec.Rules[i].Pos }, add)

	sa, sb := a.Supervisor, b.Supervisor
	if va, vb := verdictWords(sa.Default, sa.DefaultErrno), verdictWords(sb.Default, sb.DefaultErrno); va != vb {
		add("supervisor", "default", "%s → %s (%s)", va, vb, direction(sa.Default, sb.Default))
	}
	if !slices.Equal(sa.Advisory, sb.Advisory) {
		add("supervisor", "advisory", "[%s] → [%s]", strings.Join(sa.Advisory, ", "), strings.Join(sb.Advisory, ", "))
	}
	if sa.Patterns != sb.Patterns {
		add("supervisor", "patterns", "%t → %t", sa.Patterns, sb.Patterns)
	}
	if sa.CacheSize != sb.CacheSize {
		add("supervisor", "cache_size", "%d → %d", sa.CacheSize, sb.CacheSize)
	}
	aa, ab := a.Analyzer, b.Analyzer
	if aa.Model != ab.Model {
		add("analyzer", "model", "%s → %s", aa.Model, ab.Model)
	}
	if aa.Budget != ab.Budget {
		add("analyzer", "budget", "%s → %s", aa.Budget, ab.Budget)
	}
	if aa.OnTimeout != ab.OnTimeout {
		add("analyzer", "on_timeout", "%s → %s (%s)", aa.OnTimeout, ab.OnTimeout, direction(aa.OnTimeout, ab.OnTimeout))
	}
	if aa.Endpoint != ab.Endpoint {
		add("analyzer", "endpoint", "%q → %q", aa.Endpoint, ab.Endpoint)
	}
	if aa.Sequence != ab.Sequence {
		add("analyzer", "sequence", "%q → %q", aa.Sequence, ab.Sequence)
	}
	if aa.Audit != ab.Audit {
		add("analyzer", "mode", "audit %t → %t", aa.Audit, ab.Audit)
	}
	if aa.ChatModel != ab.ChatModel {
		add("analyzer", "chat_model", "%q → %q", aa.ChatModel, ab.ChatModel)
	}
	order := map[string]int{"profile": 0, "syscalls": 1, "files.read": 2, "files.write": 3, "files.exec": 4, "files.deny": 5,
		"network.connect": 6, "network.bind": 7, "network.deny": 8, "exec.rule": 9, "supervisor": 10, "analyzer": 11}
	slices.SortStableFunc(out, func(x, y Change) int {
		if d := order[x.Section] - order[y.Section]; d != 0 {
			return d
		}
		if d := x.Nr - y.Nr; d != 0 {
			return d
		}
		return strings.Compare(x.Subject, y.Subject)
	})
	return out
}

func texts(ps []Pattern) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Text
	}
	return out
}

// diffTexts reports entries of b missing from a ("added") and of a missing
// from b ("removed").
func diffTexts(section string, a, b []string, posA, posB func(int) Pos, add func(section, subject, format string, args ...any)) {
	for i, t := range b {
		if !slices.Contains(a, t) && slices.Index(b, t) == i {
			add(section, t, "added (B %s)", posText(posB(i)))
		}
	}
	for i, t := range a {
		if !slices.Contains(b, t) && slices.Index(a, t) == i {
			add(section, t, "removed (A %s)", posText(posA(i)))
		}
	}
}
