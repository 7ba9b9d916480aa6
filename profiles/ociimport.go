package profiles

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// DockerDefaultCaps is Docker's default capability set (moby
// oci/caps/defaults.go), which ImportOCI assumes when no caps are given.
var DockerDefaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// DefaultImportKernel is the kernel version minKernel is compared with when
// none is given: a fixed value, so that an import is the same on every
// machine.
const DefaultImportKernel = "6.18"

// ImportOptions select which of a moby profile's rules apply.
type ImportOptions struct {
	File   string   // the JSON file's name, for messages and comments
	Name   string   // profile name; default: File's base name
	Caps   []string // the container's capabilities; nil: DockerDefaultCaps
	Kernel string   // "MAJOR.MINOR" for minKernel; "": DefaultImportKernel
}

// Import is a translated profile.
type Import struct {
	TOML    []byte   // the profile document
	Profile *Profile // TOML, loaded (it always loads)
	// Stricter lists where the profile is stricter than the JSON because
	// archangel's loader refuses what the JSON does (and how), and Notes
	// other remarks (io_uring allowed knowingly, ignored flags). Both are
	// also comments in TOML.
	Stricter []string
	Notes    []string
	Skipped  []string // names unknown on x86-64, skipped as runc skips them
}

// mobyArches are the architecture names moby's includes/excludes use
// (Go's GOARCH, plus x32 and x86).
var mobyArches = []string{"386", "x86", "x32", "amd64", "arm", "arm64", "mips", "mipsle", "mips64", "mips64le",
	"mips64n32", "mipsel", "mipsel64", "mipsel64n32", "mips64n32le", "ppc", "ppc64", "ppc64le", "riscv64",
	"s390", "s390x", "loong64", "loongarch64"}

func importAction(s string, errnoRet *uint, path string) (Action, Errno, error) {
	switch s {
	case "SCMP_ACT_ALLOW":
		return ActionAllow, 0, nil
	case "SCMP_ACT_ERRNO":
		e := DefaultErrno // runc: EPERM when errnoRet is not set
		if errnoRet != nil {
			if *errnoRet < 1 || *errnoRet > MaxErrno {
				return 0, 0, fmt.Errorf("%s: errnoRet %d out of range (want 1..%d)", path, *errnoRet, MaxErrno)
			}
			e = Errno(*errnoRet)
		}
		return ActionErrno, e, nil
	case "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD":
		// archangel kills the whole process: for KILL_THREAD that is
		// stricter, and the process rarely survives a thread kill anyway.
		return ActionKill, 0, nil
	case "SCMP_ACT_LOG":
		return ActionLog, 0, nil
	case "SCMP_ACT_NOTIFY":
		return ActionNotify, 0, nil
	case "SCMP_ACT_TRACE", "SCMP_ACT_TRAP":
		return 0, 0, fmt.Errorf("%s: action %s is not supported: archangel has no equivalent (it allows, denies, kills, logs or notifies)", path, s)
	}
	return 0, 0, fmt.Errorf("%s: unknown action %q", path, s)
}

var importOps = map[string]Op{
	"SCMP_CMP_EQ": OpEq, "SCMP_CMP_NE": OpNe, "SCMP_CMP_LT": OpLt, "SCMP_CMP_LE": OpLe,
	"SCMP_CMP_GT": OpGt, "SCMP_CMP_GE": OpGe, "SCMP_CMP_MASKED_EQ": OpMaskedEq,
}

// kernelAtLeast compares "MAJOR.MINOR[.PATCH]" versions.
func kernelAtLeast(have, want string) (bool, error) {
	parse := func(s string) ([2]int, error) {
		var v [2]int
		parts := strings.SplitN(s, ".", 3)
		if len(parts) < 2 {
			return v, fmt.Errorf("kernel version %q: want MAJOR.MINOR", s)
		}
		for i := range 2 {
			n, err := strconv.Atoi(parts[i])
			if err != nil {
				return v, fmt.Errorf("kernel version %q: want MAJOR.MINOR", s)
			}
			v[i] = n
		}
		return v, nil
	}
	h, err := parse(have)
	if err != nil {
		return false, err
	}
	w, err := parse(want)
	if err != nil {
		return false, err
	}
	return h[0] > w[0] || h[0] == w[0] && h[1] >= w[1], nil
}

// applies evaluates moby's includes/excludes for amd64 (moby's Setup:
// excludes.arches, excludes.caps (any), excludes.minKernel, then
// includes.arches, includes.caps (all), includes.minKernel).
func applies(s OCISyscall, path string, caps []string, kernel string) (bool, error) {
	for _, f := range []struct {
		f    *OCIFilter
		what string
	}{{s.Excludes, "excludes"}, {s.Includes, "includes"}} {
		if f.f == nil {
			continue
		}
		for i, a := range f.f.Arches {
			if !slices.Contains(mobyArches, a) {
				return false, fmt.Errorf("%s.%s.arches[%d]: unknown architecture %q: cannot tell whether the rule applies on amd64", path, f.what, i, a)
			}
		}
	}
	if e := s.Excludes; e != nil {
		if slices.Contains(e.Arches, "amd64") {
			return false, nil
		}
		for _, c := range e.Caps {
			if slices.Contains(caps, c) {
				return false, nil
			}
		}
		if e.MinKernel != "" {
			ok, err := kernelAtLeast(kernel, e.MinKernel)
			if err != nil {
				return false, fmt.Errorf("%s.excludes.minKernel: %w", path, err)
			}
			if ok {
				return false, nil
			}
		}
	}
	if i := s.Includes; i != nil {
		if len(i.Arches) > 0 && !slices.Contains(i.Arches, "amd64") {
			return false, nil
		}
		for _, c := range i.Caps {
			if !slices.Contains(caps, c) {
				return false, nil
			}
		}
		if i.MinKernel != "" {
			ok, err := kernelAtLeast(kernel, i.MinKernel)
			if err != nil {
				return false, fmt.Errorf("%s.includes.minKernel: %w", path, err)
			}
			if !ok {
				return false, nil
			}
		}
	}
	return true, nil
}

// jrule is one applicable JSON rule for one system call.
type jrule struct {
	path   string
	action Action
	errno  Errno
	args   []ArgCond
}

func (r jrule) verdict() string {
	if r.action == ActionErrno {
		return "deny " + r.errno.String()
	}
	return r.action.String()
}

// ImportOCI translates an OCI linux.seccomp object or a Docker/moby
// seccomp profile into an archangel profile for x86-64 that allows and
// denies what the JSON does there (see Import.Stricter for the exceptions,
// always stricter). Rules apply per moby's includes/excludes for amd64,
// opts.Caps and opts.Kernel. Per system call, as libseccomp and runc
// decide:
//
//   - an unconditional rule decides the call (libseccomp drops conditional
//     rules for a call that has one); two with different verdicts are an
//     error;
//   - otherwise the conditional rules (their comparisons ANDed; several
//     comparisons of one argument split into separate rules, as runc
//     does), and the default action where none holds;
//   - names unknown on x86-64 are skipped (Import.Skipped).
//
// Where the loader refuses the result, the profile is made stricter:
// conditional rules with different verdicts that are not provably disjoint
// become the strictest of their verdicts for the whole call; alias
// families (open/openat/...) with one member guarded get the guard on the
// others. io_uring calls the JSON lets through get io_uring = true (a
// note). A JSON that blocks archangel's launcher calls (LauncherSyscalls)
// is an error: no stricter profile could run.
func ImportOCI(data []byte, opts ImportOptions) (*Import, error) {
	file := opts.File
	if file == "" {
		file = "seccomp.json"
	}
	var js OCISeccomp
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&js); err != nil {
		return nil, fmt.Errorf("import %s: %w", file, err)
	}
	caps := opts.Caps
	if caps == nil {
		caps = DockerDefaultCaps
	}
	kernel := opts.Kernel
	if kernel == "" {
		kernel = DefaultImportKernel
	}
	if _, err := kernelAtLeast(kernel, "0.0"); err != nil {
		return nil, fmt.Errorf("import %s: %w", file, err)
	}
	name := opts.Name
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
	}
	if !validName(name) {
		name = "imported"
	}
	im := &Import{}
	var errs []error
	fail := func(err error) { errs = append(errs, err) }

	arches := slices.Clone(js.Architectures)
	for _, m := range js.ArchMap {
		arches = append(arches, m.Architecture)
	}
	if len(arches) > 0 && !slices.Contains(arches, "SCMP_ARCH_X86_64") {
		fail(fmt.Errorf("architectures: %s does not list SCMP_ARCH_X86_64 (archangel filters x86-64 only)", strings.Join(arches, ", ")))
	}
	if len(js.Flags) > 0 {
		im.Notes = append(im.Notes, fmt.Sprintf("flags %s ignored (archangel sets its own filter flags)", strings.Join(js.Flags, ", ")))
	}
	if js.ListenerPath != "" {
		im.Notes = append(im.Notes, fmt.Sprintf("listenerPath %q ignored: archangel's supervisor is the notify listener", js.ListenerPath))
	}
	def, defErrno, err := importAction(js.DefaultAction, js.DefaultErrnoRet, "defaultAction")
	if err != nil {
		fail(err)
	}
	if js.DefaultAction == "" {
		fail(errors.New("defaultAction: missing"))
	}
	if def != ActionErrno {
		defErrno = 0
	}

	perName := map[string][]jrule{}
	skipped := map[string]bool{}
	for i, s := range js.Syscalls {
		path := fmt.Sprintf("syscalls[%d]", i)
		ok, err := applies(s, path, caps, kernel)
		if err != nil {
			fail(err)
			continue
		}
		if !ok {
			continue
		}
		a, e, err := importAction(s.Action, s.ErrnoRet, path+".action")
		if err != nil {
			fail(err)
			continue
		}
		if a == ActionKill && s.Action != "SCMP_ACT_KILL_PROCESS" {
			im.Stricter = append(im.Stricter, fmt.Sprintf("%s: %s kills the thread; archangel kills the whole process", path, s.Action))
		}
		var conds []ArgCond
		good := true
		for j, ar := range s.Args {
			op, ok := importOps[ar.Op]
			if !ok {
				fail(fmt.Errorf("%s.args[%d].op: unknown comparison %q", path, j, ar.Op))
				good = false
				continue
			}
			if ar.Index > 5 {
				fail(fmt.Errorf("%s.args[%d].index: %d out of range (want 0..5)", path, j, ar.Index))
				good = false
				continue
			}
			c := ArgCond{Index: int(ar.Index), Op: op, Value: ar.Value}
			if op == OpMaskedEq {
				c.Mask, c.Value = ar.Value, ar.ValueTwo
			}
			conds = append(conds, c)
		}
		if !good {
			continue
		}
		// runc adds a rule that compares one argument twice as one rule
		// per comparison.
		variants := [][]ArgCond{conds}
		if dupIndex(conds) {
			variants = nil
			for _, c := range conds {
				variants = append(variants, []ArgCond{c})
			}
			im.Notes = append(im.Notes, fmt.Sprintf("%s compares an argument more than once: split into one rule per comparison, as runc does", path))
		}
		names := s.Names
		if s.Name != "" {
			names = append([]string{s.Name}, names...)
		}
		for _, n := range names {
			if _, ok := SyscallNr(n); !ok {
				skipped[n] = true
				continue
			}
			for _, v := range variants {
				if neverMatches(v) {
					continue
				}
				perName[n] = append(perName[n], jrule{path: path, action: a, errno: e, args: v})
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("import %s: %w", file, err)
	}
	for n := range skipped {
		im.Skipped = append(im.Skipped, n)
	}
	slices.Sort(im.Skipped)

	p := &Profile{
		Name:         name,
		Description:  fmt.Sprintf("Imported from %s for x86-64 (caps: %s; kernel %s)", filepath.Base(file), capsText(caps, opts.Caps == nil), kernel),
		Default:      def,
		DefaultErrno: defErrno,
		DefaultPos:   Pos{File: file},
		Supervisor:   Supervisor{Default: DefaultSupervisor, DefaultErrno: DefaultErrno},
		Analyzer:     Analyzer{Model: DefaultModel, Budget: DefaultBudget, OnTimeout: DefaultOnTimeout},
	}
	type policy struct {
		action Action
		errno  Errno
		src    string
		conds  []jrule
	}
	pols := map[string]*policy{}
	for _, n := range SyscallNames() {
		rs := perName[n]
		if len(rs) == 0 {
			continue
		}
		pol := &policy{action: def, errno: defErrno, src: "defaultAction"}
		var uncond *jrule
		for i := range rs {
			r := &rs[i]
			if len(r.args) > 0 {
				continue
			}
			if uncond != nil && (uncond.action != r.action || uncond.errno != r.errno) {
				return nil, fmt.Errorf("import %s: %s: %s says %s but %s says %s: libseccomp refuses two unconditional rules for one call",
					file, n, uncond.path, uncond.verdict(), r.path, r.verdict())
			}
			if uncond == nil {
				uncond = r
			}
		}
		if uncond != nil {
			pol.action, pol.errno, pol.src = uncond.action, uncond.errno, uncond.path
			pols[n] = pol
			continue
		}
		for _, r := range rs {
			if r.action == pol.action && r.errno == pol.errno {
				continue // decides what the default decides
			}
			pol.conds = append(pol.conds, r)
		}
		if a, b, ok := complementPair(pol.conds); ok {
			// One rule and the negations of its conditions (how ExportOCI
			// writes a fallback): b everywhere a does not hold.
			pol.action, pol.errno, pol.src, pol.conds = b.action, b.errno, b.path, []jrule{a}
		}
		if overlapping(pol.conds) {
			strict := jrule{action: pol.action, errno: pol.errno, path: pol.src}
			var paths []string
			for _, r := range pol.conds {
				paths = append(paths, r.path)
				if r.action.strictness() > strict.action.strictness() {
					strict = r
				}
			}
			im.Stricter = append(im.Stricter, fmt.Sprintf("%s: the argument rules %s have different verdicts and may overlap, which archangel refuses: %s for every call",
				n, strings.Join(paths, ", "), strict.verdict()))
			pol.action, pol.errno, pol.src, pol.conds = strict.action, strict.errno, strings.Join(paths, "+"), nil
		}
		pols[n] = pol
	}

	// Alias families: a member guarded by a rule while another runs is
	// refused; guard them all with the strictest guard.
	polOf := func(n string) policy {
		if pol, ok := pols[n]; ok {
			return *pol
		}
		return policy{action: def, errno: defErrno, src: "defaultAction"}
	}
	for _, fam := range aliasFamilies {
		var guard *policy
		var guardName string
		for _, n := range fam {
			pol := polOf(n)
			if pol.src != "defaultAction" && !pol.action.runs() && (guard == nil || pol.action.strictness() > guard.action.strictness()) {
				guard, guardName = &pol, n
			}
		}
		if guard == nil {
			continue
		}
		for _, n := range fam {
			pol := polOf(n)
			if !pol.action.runs() {
				continue
			}
			was := jrule{action: pol.action, errno: pol.errno}.verdict()
			np := pol
			np.action, np.errno, np.src = guard.action, guard.errno, guard.src+" (alias family)"
			pols[n] = &np
			im.Stricter = append(im.Stricter, fmt.Sprintf("%s: %s in the JSON, but its alias %s is %s (%s): archangel guards %s together, so %s too",
				n, was, guardName, jrule{action: guard.action, errno: guard.errno}.verdict(), guard.src, strings.Join(fam, "/"), jrule{action: guard.action, errno: guard.errno}.verdict()))
		}
	}

	// Launcher calls must run.
	for _, n := range LauncherSyscalls {
		pol := polOf(n)
		bad := !launcherOK(n, pol.action)
		for _, c := range pol.conds {
			bad = bad || !launcherOK(n, c.action)
		}
		if bad {
			errs = append(errs, fmt.Errorf("%s is %s (%s): archangel's launcher calls %s after loading the filter, so no profile this strict can run under archangel",
				n, jrule{action: pol.action, errno: pol.errno}.verdict(), pol.src, n))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("import %s: %w", file, err)
	}

	// io_uring the JSON lets through is allowed knowingly.
	for _, n := range groupExpanded["@io-uring"] {
		pol := polOf(n)
		lets := pol.action.runs() || pol.action == ActionNotify
		for _, c := range pol.conds {
			lets = lets || c.action.runs() || c.action == ActionNotify
		}
		if lets && !p.IOUring {
			p.IOUring = true
			im.Notes = append(im.Notes, "io_uring = true: the JSON lets io_uring_* calls through, and io_uring performs system calls the filter never sees")
		}
	}

	// Rules: unconditional ones grouped by verdict and origin, then the
	// conditional ones in JSON order.
	type ukey struct {
		action Action
		errno  Errno
		src    string
	}
	var order []ukey
	group := map[ukey][]string{}
	var conds []Rule
	for _, n := range SyscallNames() {
		pol, ok := pols[n]
		if !ok {
			continue
		}
		for _, c := range pol.conds {
			conds = append(conds, Rule{Syscalls: []string{n}, Action: c.action, Errno: c.errno, Args: c.args,
				Pos: Pos{File: file}, Source: c.path, Profile: name})
		}
		if pol.src == "defaultAction" {
			continue // the profile default decides the same
		}
		k := ukey{pol.action, pol.errno, pol.src}
		if _, seen := group[k]; !seen {
			order = append(order, k)
		}
		group[k] = append(group[k], n)
	}
	slices.SortStableFunc(order, func(a, b ukey) int { return strings.Compare(a.src, b.src) })
	for _, k := range order {
		ns := group[k]
		slices.SortFunc(ns, func(a, b string) int {
			x, _ := SyscallNr(a)
			y, _ := SyscallNr(b)
			return x - y
		})
		p.Rules = append(p.Rules, Rule{Syscalls: ns, Action: k.action, Errno: k.errno, Pos: Pos{File: file}, Source: k.src, Profile: name})
	}
	slices.SortStableFunc(conds, func(a, b Rule) int {
		x, _ := SyscallNr(a.Syscalls[0])
		y, _ := SyscallNr(b.Syscalls[0])
		return x - y
	})
	p.Rules = append(p.Rules, conds...)

	header := []string{fmt.Sprintf("Imported from %s by `archangel profile import` for x86-64:", file),
		fmt.Sprintf("capabilities %s; kernel %s (minKernel).", capsText(caps, opts.Caps == nil), kernel)}
	if len(im.Skipped) > 0 {
		header = append(header, "", "Names unknown on x86-64, skipped (as runc skips them):")
		header = append(header, wrapWords(strings.Join(im.Skipped, " "), 74)...)
	}
	if len(im.Stricter) > 0 {
		header = append(header, "", "STRICTER than the JSON, where archangel's loader refuses what it does:")
		for _, s := range im.Stricter {
			header = append(header, wrapWords("- "+s, 74)...)
		}
	}
	if len(im.Notes) > 0 {
		header = append(header, "", "Notes:")
		for _, s := range im.Notes {
			header = append(header, wrapWords("- "+s, 74)...)
		}
	}
	var b bytes.Buffer
	if err := writeTOML(&b, p, header); err != nil {
		return nil, err
	}
	im.TOML = b.Bytes()
	loaded, err := Parse(strings.TrimSuffix(file, filepath.Ext(file))+".toml", im.TOML)
	if err != nil {
		return nil, fmt.Errorf("import %s: the translated profile does not load (a bug in the importer): %w", file, err)
	}
	im.Profile = loaded
	return im, nil
}

func capsText(caps []string, dflt bool) string {
	if dflt {
		return "Docker's default set"
	}
	if len(caps) == 0 {
		return "none"
	}
	return strings.Join(caps, ",")
}

func dupIndex(cs []ArgCond) bool {
	seen := map[int]bool{}
	for _, c := range cs {
		if seen[c.Index] {
			return true
		}
		seen[c.Index] = true
	}
	return false
}

// neverMatches reports a masked_eq whose value has bits outside the mask.
func neverMatches(cs []ArgCond) bool {
	for _, c := range cs {
		if c.Op == OpMaskedEq && c.Value&^c.Mask != 0 {
			return true
		}
	}
	return false
}

// overlapping reports conditional rules with different verdicts that the
// loader cannot prove disjoint (see checkOverlap).
func overlapping(rs []jrule) bool {
	for j := range rs {
		for i := range j {
			if (rs[i].action != rs[j].action || rs[i].errno != rs[j].errno) && !disjoint(rs[i].args, rs[j].args) {
				return true
			}
		}
	}
	return false
}

func wrapWords(s string, width int) []string {
	var lines []string
	var cur string
	for _, w := range strings.Fields(s) {
		if cur != "" && len(cur)+1+len(w) > width {
			lines = append(lines, cur)
			cur = "  " + w
			continue
		}
		if cur == "" {
			cur = w
		} else {
			cur += " " + w
		}
	}
	if cur != "" {
		lines = append(lines, cur)
	}
	return lines
}

// complementPair recognizes one rule a with conditions c1..cn and rules
// with another verdict whose only conditions are exactly not c1 .. not cn:
// together they decide every call, a where it holds and b elsewhere.
func complementPair(rs []jrule) (jrule, jrule, bool) {
	for _, a := range rs {
		var negs []ArgCond
		for _, c := range a.args {
			n, ok := negated[c.Op]
			if !ok {
				return jrule{}, jrule{}, false
			}
			negs = append(negs, ArgCond{Index: c.Index, Op: n, Value: c.Value})
		}
		var b *jrule
		var seen []ArgCond
		ok := true
		for i := range rs {
			r := &rs[i]
			if r.action == a.action && r.errno == a.errno && slices.Equal(r.args, a.args) {
				continue
			}
			if len(r.args) != 1 || !slices.Contains(negs, r.args[0]) || b != nil && (b.action != r.action || b.errno != r.errno) {
				ok = false
				break
			}
			b = r
			seen = append(seen, r.args[0])
		}
		if ok && b != nil && len(seen) == len(negs) && !slices.ContainsFunc(negs, func(n ArgCond) bool { return !slices.Contains(seen, n) }) {
			return a, *b, true
		}
	}
	return jrule{}, jrule{}, false
}
