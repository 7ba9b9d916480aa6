package profiles

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The learned overlay: verdicts the supervisor's model tier (or a person,
// with learn --ask) reached for calls no rule decides, kept next to the
// profile so that the next launch decides them without asking again.
// Verdicts on scalar arguments only become conditional [[syscalls.rule]]
// entries, compiled into the kernel filter; verdicts on a path or an
// address become Profile.Learned, which the supervisor answers ahead of
// the model. See doc.go, "Learned overlay", for the file format.

// MinEvidenceRuns is how many runs must have reached the same verdict for
// the same call before it becomes a rule. One analysis per run is all the
// evidence a run gives (the model tier caches its verdict for the rest of
// the run), so two runs are two independent analyses that agreed; a
// verdict that flips in between is refused instead. A person's answer
// (source "ask") is a decision, not an estimate: one is enough.
const MinEvidenceRuns = 2

// MaxOverlayEntries bounds the [[pending]] evidence an overlay keeps: past
// it, the entries seen least recently are dropped first.
const MaxOverlayEntries = 4096

// Evidence is what supports a learned verdict.
type Evidence struct {
	Count       int       // calls decided with this verdict
	Runs        int       // runs in which it was reached
	First, Last time.Time // first and last time it was reached (UTC, seconds)
	Source      string    // "analyzer" (the model tier) or "ask" (a person, learn --ask)
	SeenIn      []string  // scalar verdicts: the executables that made the calls, sorted
}

// LearnedVerdict is one entry of an overlay: a verdict for an exact call.
// A scalar verdict has Args (one OpEq condition per scalar argument of the
// call, in index order) and no Path or Addr; a pointer verdict has Exe and
// exactly one of Path or Addr, and Args nil.
type LearnedVerdict struct {
	Syscall string
	Action  Action // ActionAllow or ActionErrno
	Errno   Errno  // for ActionErrno
	Args    []ArgCond
	Scalar  bool   // a scalar verdict (Args may be empty: a call without scalar arguments)
	Exe     string // pointer verdicts: the executable the verdict is for
	Path    string // the path the call named (absolute)
	Addr    string // or the address: "IP:PORT", "[IPv6]:PORT", "unix:/path", "unix:@name"
	Access  string // for Path: "read", "write" or "read+write"; "" otherwise
	Evidence
	Reason string // [[refused]] entries: why the verdict is kept out
	Pos    Pos    // where the entry is written; zero for one not read from a file
}

// Overlay is a learned overlay file: its rules (compiled at launch), the
// evidence still below MinEvidenceRuns, and the verdicts refused.
type Overlay struct {
	File       string
	Profile    string // the profile the overlay belongs to
	profilePos Pos
	Rules      []LearnedVerdict
	Pending    []LearnedVerdict
	Refused    []LearnedVerdict
}

// Key identifies the call a verdict is for: two verdicts with the same key
// and different actions contradict each other.
func (v *LearnedVerdict) Key() string {
	if v.Scalar {
		var b strings.Builder
		b.WriteString("scalar\x00" + v.Syscall)
		for _, a := range v.Args {
			fmt.Fprintf(&b, "\x00%d=%#x", a.Index, a.Value)
		}
		return b.String()
	}
	return strings.Join([]string{"pointer", v.Exe, v.Syscall, v.Path, v.Addr, v.Access}, "\x00")
}

// What names the call a verdict is for, for messages: `personality(0x0)`,
// `openat "/etc/hosts" (read) by /usr/bin/cat`.
func (v *LearnedVerdict) What() string {
	if v.Scalar {
		vals := make([]string, len(v.Args))
		for i, a := range v.Args {
			vals[i] = fmt.Sprintf("arg%d=%#x", a.Index, a.Value)
		}
		return v.Syscall + "(" + strings.Join(vals, ", ") + ")"
	}
	s := v.Syscall + " " + strconv.Quote(v.Path+v.Addr)
	if v.Access != "" {
		s += " (" + v.Access + ")"
	}
	return s + " by " + v.Exe
}

func (v *LearnedVerdict) verdictText() string {
	if v.Action == ActionErrno {
		return "deny " + v.Errno.String()
	}
	return v.Action.String()
}

// Summary is the one-line account `profile show` and `profile check`
// print for a learned rule: "12 verdicts in 2 runs from the analyzer,
// 2026-11-26".
func (e *Evidence) Summary() string {
	from := "the analyzer"
	if e.Source == "ask" {
		from = "learn --ask answers"
	}
	s := fmt.Sprintf("%d %s in %d %s from %s", e.Count, plural(e.Count, "verdict", "verdicts"), e.Runs, plural(e.Runs, "run", "runs"), from)
	if !e.Last.IsZero() {
		s += ", " + e.Last.UTC().Format("2006-01-02")
	}
	return s
}

// ---- where overlays live ----

// OverlayPath returns the overlay file of the profile that ref (as given
// to Load) loads: for a profile file, the file next to it with ".toml"
// replaced by ".learned.toml" (app.toml -> app.learned.toml); for a
// profile found by name (a built-in, or one in SearchDirs), NAME.learned.toml
// in StateDir, so that shared profiles stay untouched.
func OverlayPath(ref string) string {
	if isPath(ref) {
		return strings.TrimSuffix(ref, ".toml") + ".learned.toml"
	}
	return filepath.Join(StateDir(), ref+".learned.toml")
}

// StateDir is where overlays of profiles found by name are kept:
// $ARCHANGEL_STATE_DIR when set; /var/lib/archangel/learned for root;
// otherwise $XDG_STATE_HOME/archangel/learned (or ~/.local/state/...).
func StateDir() string {
	if d := os.Getenv("ARCHANGEL_STATE_DIR"); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/var/lib/archangel/learned"
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "archangel", "learned")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "archangel", "learned")
	}
	return filepath.Join(os.TempDir(), "archangel-learned")
}

// LoadOverlay reads and validates the overlay at file. A missing file is
// no overlay: nil, nil.
func LoadOverlay(file string) (*Overlay, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load learned overlay: %w", err)
	}
	return ParseOverlay(file, data)
}

// ParseOverlay validates one overlay document on its own (entries well
// formed, exact, and none that allows a dangerous call or a credential
// path); ApplyOverlay checks it against its profile. Every problem is
// reported at once, as *Error values naming file:line:col.
func ParseOverlay(file string, data []byte) (*Overlay, error) {
	var errs errList
	ov := parseOverlay(file, data, &errs)
	if err := errs.err(); err != nil {
		return nil, withIgnoreHint(err)
	}
	return ov, nil
}

// withIgnoreHint adds, once, how to get going again without the overlay.
func withIgnoreHint(err error) error {
	return fmt.Errorf("%w\n\tto run without the learned verdicts: --no-learned (or delete the file, or the entry)", err)
}

var overlayTopKeys = []string{"overlay", "rule", "pending", "refused"}
var overlayEntryKeys = []string{"syscall", "verdict", "errno", "args", "path", "addr", "exe", "access",
	"count", "runs", "first_seen", "last_seen", "source", "seen_in"}
var overlayArgKeys = []string{"index", "op", "value"}

func parseOverlay(file string, data []byte, errs *errList) *Overlay {
	m, p := decodeDoc(file, data, errs)
	if p == nil {
		return nil
	}
	ov := &Overlay{File: file}
	p.checkKeys(m, "", overlayTopKeys)
	if t, ok := p.table(m, "", "overlay"); ok {
		p.checkKeys(t, "overlay", []string{"profile"})
		if it, ok := p.str(t, "overlay", "profile"); ok {
			ov.Profile, ov.profilePos = it.text, it.pos
		}
	}
	if ov.Profile == "" {
		errs.add(Pos{File: file, Line: 1, Col: 1}, "add [overlay] profile = \"NAME\", the profile the overlay belongs to",
			"learned overlay names no profile")
	}
	seen := map[string]Pos{}
	for _, sec := range []struct {
		key string
		dst *[]LearnedVerdict
	}{{"rule", &ov.Rules}, {"pending", &ov.Pending}, {"refused", &ov.Refused}} {
		ts, _ := p.tables(m, "", sec.key)
		for i, t := range ts {
			if t == nil {
				continue
			}
			at := indexPath(sec.key, i)
			v, ok := p.learnedEntry(t, at, sec.key)
			if !ok {
				continue
			}
			if prev, dup := seen[v.Key()]; dup {
				errs.add(v.Pos, "keep one entry per call", "%s: a second entry for %s (the first is at %s)", at, v.What(), prev)
				continue
			}
			seen[v.Key()] = v.Pos
			*sec.dst = append(*sec.dst, v)
		}
	}
	return ov
}

func (p *docParser) learnedEntry(t map[string]any, at, section string) (LearnedVerdict, bool) {
	keys := overlayEntryKeys
	if section == "refused" {
		keys = append(slices.Clone(keys), "reason")
	}
	p.checkKeys(t, at, keys)
	v := LearnedVerdict{Pos: p.keyPos(at)}
	n0 := len(p.errs.errs)
	it, ok := p.str(t, at, "syscall")
	switch {
	case !ok:
		if _, present := t["syscall"]; !present {
			p.errs.add(v.Pos, "", "%s has no syscall", at)
		}
	case !knownSyscall(it.text):
		p.errs.add(it.pos, "`archangel syscalls` lists valid names", "unknown syscall %q in %s.syscall%s", it.text, at, didYouMeanSuffix(it.text, syscallSorted))
	default:
		v.Syscall = it.text
	}
	if _, present := t["verdict"]; !present {
		p.errs.add(v.Pos, "", "%s has no verdict (want allow or deny)", at)
	} else if a, _, ok := p.action(t, at, "verdict", ActionAllow, ActionErrno); ok {
		v.Action = a
		if a == ActionErrno {
			v.Errno = DefaultErrno
		}
	}
	if _, present := t["errno"]; present {
		if e, pos, ok := p.errno(t, at, "errno"); ok {
			if v.Action != ActionErrno {
				p.errs.add(pos, "remove errno, or set verdict = \"deny\"", "%s.errno is only used with verdict = \"deny\"", at)
			}
			v.Errno = e
		}
	}
	v.Source = "analyzer"
	if it, ok := p.str(t, at, "source"); ok {
		if it.text != "analyzer" && it.text != "ask" {
			p.errs.add(it.pos, "", "%s.source %q: want \"analyzer\" or \"ask\"", at, it.text)
		}
		v.Source = it.text
	}
	for _, k := range []struct {
		key string
		dst *int
	}{{"count", &v.Count}, {"runs", &v.Runs}} {
		n, pos, ok := p.integer(t, at, k.key)
		switch {
		case !ok:
			if _, present := t[k.key]; !present {
				p.errs.add(v.Pos, "", "%s has no %s (the evidence: how many calls and runs reached the verdict)", at, k.key)
			}
		case n < 1 || n > 1<<40:
			p.errs.add(pos, "", "%s.%s %d out of range (want >= 1)", at, k.key, n)
		default:
			*k.dst = int(n)
		}
	}
	if v.Runs > v.Count && v.Count > 0 {
		p.errs.add(p.valPos(at+".runs"), "", "%s: %d runs but only %d calls: every run counted has at least one call", at, v.Runs, v.Count)
	}
	for _, k := range []struct {
		key string
		dst *time.Time
	}{{"first_seen", &v.First}, {"last_seen", &v.Last}} {
		if it, ok := p.str(t, at, k.key); ok {
			tm, err := time.Parse(time.RFC3339, it.text)
			if err != nil {
				p.errs.add(it.pos, "write it as RFC 3339, e.g. \"2026-11-26T03:04:05Z\"", "%s.%s %q is not a time", at, k.key, it.text)
			}
			*k.dst = tm.UTC()
		}
	}
	if items, ok := p.strs(t, at, "seen_in"); ok {
		for _, it := range items {
			v.SeenIn = append(v.SeenIn, it.text)
		}
	}
	if it, ok := p.str(t, at, "reason"); ok {
		v.Reason = it.text
	}
	_, hasArgs := t["args"]
	_, hasPath := t["path"]
	_, hasAddr := t["addr"]
	switch {
	case hasArgs && (hasPath || hasAddr):
		p.errs.add(v.Pos, "a scalar verdict has args; a verdict on a path or address has exe and path or addr",
			"%s has both args and a path or address", at)
	case hasArgs:
		v.Scalar = true
		p.scalarArgs(t, at, &v)
		if _, present := t["exe"]; present {
			p.errs.add(p.keyPos(at+".exe"), "use seen_in = [...] to record where the calls came from",
				"%s.exe: a scalar verdict is compiled into the kernel filter, which cannot tell executables apart", at)
		}
	case hasPath && hasAddr:
		p.errs.add(v.Pos, "one entry per call", "%s has both path and addr", at)
	case hasPath || hasAddr:
		p.pointerKey(t, at, &v)
	default:
		p.errs.add(v.Pos, "add args = [...] (one { index, value } per scalar argument) or exe with path or addr",
			"%s says neither which arguments nor which path or address the verdict is for", at)
	}
	if len(p.errs.errs) > n0 {
		return v, false
	}
	if section != "refused" {
		if msg, hint, field := v.unsafe(); msg != "" {
			p.errs.add(p.valPos(at+"."+field), hint, "%s: %s", at, msg)
			return v, false
		}
		if section == "rule" && v.Source == "analyzer" && v.Runs < MinEvidenceRuns {
			p.errs.add(p.valPos(at+".runs"), "move it to [[pending]]; archangel promotes it when another run agrees",
				"%s: a learned rule needs the analyzer's verdict from at least %d runs, this one has %d", at, MinEvidenceRuns, v.Runs)
			return v, false
		}
	}
	return v, true
}

// scalarArgs reads a scalar verdict's args: every scalar argument of the
// call, each an exact value, nothing else.
func (p *docParser) scalarArgs(t map[string]any, at string, v *LearnedVerdict) {
	if v.Syscall == "" {
		return
	}
	want, known := ScalarArgs(v.Syscall)
	if !known {
		p.errs.add(p.keyPos(at+".args"), "delete the entry: archangel learns scalar verdicts only for calls whose arguments it knows",
			"%s: no argument list is known for %q, so no exact rule can be made for it", at, v.Syscall)
		return
	}
	args, ok := p.tables(t, at, "args")
	if !ok {
		return
	}
	got := map[int]bool{}
	for i, a := range args {
		if a == nil {
			continue
		}
		ap := indexPath(at+".args", i)
		p.checkKeys(a, ap, overlayArgKeys)
		n, pos, ok := p.integer(a, ap, "index")
		if !ok {
			if _, present := a["index"]; !present {
				p.errs.add(p.valPos(ap), "", "%s has no index", ap)
			}
			continue
		}
		if it, ok := p.str(a, ap, "op"); ok && it.text != "eq" {
			p.errs.add(it.pos, "learned rules are exact: use op = \"eq\" (or leave op out)", "%s.op %q: a learned rule compares with eq only", ap, it.text)
		}
		val, ok := p.argValue(a, ap, "value")
		if !ok {
			if _, present := a["value"]; !present {
				p.errs.add(p.valPos(ap), "", "%s has no value", ap)
			}
			continue
		}
		idx := int(n)
		switch {
		case n < 0 || n > 5:
			p.errs.add(pos, "", "%s.index %d out of range (want 0..5)", ap, n)
		case got[idx]:
			p.errs.add(pos, "", "%s: argument %d twice", ap, idx)
		case !slices.Contains(want, idx):
			decl := "none"
			if decls := syscallArgs()[v.Syscall]; idx < len(decls) {
				decl = decls[idx]
			}
			p.errs.add(pos, fmt.Sprintf("the scalar arguments of %s are %s", v.Syscall, indexList(want)),
				"%s: argument %d of %s is not a scalar argument (%s): its value says nothing the verdict was based on", ap, idx, v.Syscall, decl)
		default:
			got[idx] = true
			v.Args = append(v.Args, ArgCond{Index: idx, Op: OpEq, Value: val})
		}
	}
	var missing []int
	for _, i := range want {
		if !got[i] {
			missing = append(missing, i)
		}
	}
	if len(missing) > 0 {
		p.errs.add(p.keyPos(at+".args"), "a rule that leaves an argument out would allow values no run was seen to use",
			"%s: args must give every scalar argument of %s (%s); missing %s", at, v.Syscall, indexList(want), indexList(missing))
	}
	slices.SortFunc(v.Args, func(a, b ArgCond) int { return cmp.Compare(a.Index, b.Index) })
}

func indexList(idx []int) string {
	if len(idx) == 0 {
		return "none"
	}
	s := make([]string, len(idx))
	for i, x := range idx {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ", ")
}

// pointerKey reads a path or address verdict's key: exe, path or addr,
// access.
func (p *docParser) pointerKey(t map[string]any, at string, v *LearnedVerdict) {
	if it, ok := p.str(t, at, "exe"); ok {
		if !path.IsAbs(it.text) || path.Clean(it.text) != it.text {
			p.errs.add(it.pos, "", "%s.exe %q: want the executable's absolute, clean path", at, it.text)
		}
		v.Exe = it.text
	} else if _, present := t["exe"]; !present {
		p.errs.add(v.Pos, "a verdict on a path or address holds for one executable", "%s has no exe", at)
	}
	if it, ok := p.str(t, at, "path"); ok {
		if !path.IsAbs(it.text) || path.Clean(it.text) != it.text {
			p.errs.add(it.pos, "", "%s.path %q: want an absolute, clean path", at, it.text)
		}
		v.Path = it.text
	}
	if it, ok := p.str(t, at, "addr"); ok {
		e, err := ParseEndpoint(it.text)
		switch {
		case err != nil:
			p.errs.add(it.pos, "", "%s.addr: %v", at, err)
		case e.Any || e.Host != "" || e.PortLo != e.PortHi || e.Unix == "" && !e.Prefix.IsSingleIP():
			p.errs.add(it.pos, "write one address and one port, as seen", "%s.addr %q: a learned verdict names one exact address", at, it.text)
		}
		v.Addr = it.text
	}
	if it, ok := p.str(t, at, "access"); ok {
		if !slices.Contains([]string{"read", "write", "read+write"}, it.text) {
			p.errs.add(it.pos, "", "%s.access %q: want \"read\", \"write\" or \"read+write\"", at, it.text)
		}
		if v.Path == "" {
			p.errs.add(it.pos, "", "%s.access is only used with path", at)
		}
		v.Access = it.text
	}
	if v.Syscall != "" {
		if _, known := syscallArgs()[v.Syscall]; known && !hasPointerArg(v.Syscall) {
			p.errs.add(p.valPos(at+".syscall"), "", "%s: %s has no pointer argument, so no path or address decides it", at, v.Syscall)
		}
	}
}

// ScalarArgs returns the indexes of the arguments of the system call
// called name that are not pointers, as the kernel declares its
// parameters; ok is false when archangel does not know them.
func ScalarArgs(name string) (idx []int, ok bool) {
	decls, ok := syscallArgs()[name]
	if !ok {
		return nil, false
	}
	idx = []int{}
	for i, d := range decls {
		if !strings.Contains(d, "*") {
			idx = append(idx, i)
		}
	}
	return idx, true
}

// namesPathOrAddr returns the parameter of the system call called name
// that names a file, a string or a peer (char *, a socket address or
// message header, a file handle), or "".
func namesPathOrAddr(name string) string {
	for _, d := range syscallArgs()[name] {
		for _, t := range []string{"char *", "sockaddr", "msghdr", "file_handle"} {
			if strings.Contains(d, t) {
				return d
			}
		}
	}
	return ""
}

func hasPointerArg(name string) bool {
	for _, d := range syscallArgs()[name] {
		if strings.Contains(d, "*") {
			return true
		}
	}
	return false
}

// ---- what no overlay may hold ----

// dangerousGroups and dangerousCalls are never allowed by a learned
// verdict: a model's estimate is not enough to open them up. A person
// writes such an allow into the profile itself.
// syscallArgs is syscallArgsTable, built on first use: the launcher shim
// and the watchdog, which never look at it, do not pay for it at start.
var syscallArgs = sync.OnceValue(syscallArgsTable)

var dangerousGroups = []string{"@mount", "@module", "@reboot", "@swap", "@raw-io", "@clock", "@cpu-emulation", "@obsolete", "@keyring", "@io-uring"}
var dangerousCalls = []string{"kexec_load", "kexec_file_load", "bpf", "perf_event_open", "userfaultfd",
	"ptrace", "process_vm_readv", "process_vm_writev", "add_key", "request_key", "keyctl"}

// DangerousReason says why a learned verdict may not allow the system call
// called name ("it is in @mount"), or "" when it may.
func DangerousReason(name string) string {
	if slices.Contains(dangerousCalls, name) {
		return "a call only the profile itself can allow"
	}
	for _, g := range dangerousGroups {
		if slices.Contains(groupExpanded[g], name) {
			return "it is in " + g
		}
	}
	return ""
}

// CredentialPaths are the secrets no learned verdict may allow, and that
// a learned profile denies unless the command was seen reading them (the
// learner's [files] deny list).
var CredentialPaths = []string{"/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-",
	"${HOME}/.ssh/**", "${HOME}/.gnupg/**", "${HOME}/.aws/**", "${HOME}/.config/gcloud/**", "${HOME}/.docker/config.json"}

// IsCredentialPath reports whether p is one of CredentialPaths, with
// ${HOME} standing for any directory (whose home the target has is not
// known when the overlay is checked).
func IsCredentialPath(p string) bool {
	p = path.Clean(p)
	for _, c := range CredentialPaths {
		rest, home := strings.CutPrefix(c, "${HOME}/")
		if !home {
			if p == c {
				return true
			}
			continue
		}
		if dir, ok := strings.CutSuffix(rest, "/**"); ok {
			if strings.Contains(p+"/", "/"+dir+"/") {
				return true
			}
			continue
		}
		if strings.HasSuffix(p, "/"+rest) {
			return true
		}
	}
	return false
}

// unsafe reports an allow no overlay may hold, and the entry's field to
// blame ("syscall" or "path").
func (v *LearnedVerdict) unsafe() (msg, hint, field string) {
	if v.Action != ActionAllow {
		return "", "", ""
	}
	if why := DangerousReason(v.Syscall); why != "" {
		return fmt.Sprintf("a learned verdict may not allow %s (%s)", v.Syscall, why),
			"allow it in the profile itself if the program needs it, and delete the entry", "syscall"
	}
	if decl := namesPathOrAddr(v.Syscall); v.Scalar && decl != "" {
		return fmt.Sprintf("a scalar verdict may not allow %s: its argument %q names a path, a string or an address, which a rule on the scalar arguments cannot see", v.Syscall, decl),
			"leave it to the model (delete the entry); a path or address verdict says exe and path or addr", "syscall"
	}
	if v.Path != "" && IsCredentialPath(v.Path) {
		return fmt.Sprintf("a learned verdict may not allow %s on %s: it is a credential path", v.Syscall, v.Path),
			"allow it in the profile's [files] if the program needs it, and delete the entry", "path"
	}
	return "", "", ""
}

func knownSyscall(name string) bool {
	_, ok := syscallByName[name]
	return ok
}

// ---- checking against the profile, and compiling ----

// conflict checks v against the profile it is learned for: the verdict
// must only decide calls the profile hands to the supervisor. It returns a
// description of the profile rule v contradicts, or "" when v is fine;
// redundant reports a verdict the profile already reaches on its own.
func (v *LearnedVerdict) conflict(p *Profile) (what string, redundant bool) {
	sp := p.Policy(v.Syscall)
	agrees := func(a Action, e Errno) bool {
		return a == v.Action && (a != ActionErrno || e == v.Errno)
	}
	describe := func(a Action, e Errno, src string, pos Pos) string {
		verb := map[Action]string{ActionAllow: "allows", ActionKill: "kills", ActionLog: "logs", ActionNotify: "notifies"}[a]
		if a == ActionErrno {
			verb = "denies (" + e.String() + ")"
		}
		return fmt.Sprintf("the profile %s %s by %s (%s)", verb, v.Syscall, src, pos)
	}
	notified := false
	for _, c := range sp.Conds {
		m := condsMatch(c.Args, v)
		if m == matchNo {
			continue
		}
		if c.Action == ActionNotify {
			notified = true
			if m == matchYes {
				return "", false
			}
			continue
		}
		if agrees(c.Action, c.Errno) {
			if m == matchYes {
				// Every call v covers that no earlier rule notifies
				// stops here, decided as v decides it.
				return "", !notified
			}
			continue
		}
		return describe(c.Action, c.Errno, c.Source, c.Pos), false
	}
	switch {
	case sp.Action == ActionNotify:
		return "", false
	case notified:
		// Some calls v covers may be notified, others decided by the
		// unconditional action: v must agree with it.
		if agrees(sp.Action, sp.Errno) {
			return "", false
		}
	case agrees(sp.Action, sp.Errno):
		return "", true
	}
	return describe(sp.Action, sp.Errno, sp.Source, sp.Pos), false
}

type match int

const (
	matchNo    match = iota // the condition fails for every call v covers
	matchMaybe              // it depends on an argument v does not fix
	matchYes                // it holds for every call v covers
)

// condsMatch evaluates a rule's conditions on the calls v covers (the
// values v fixes; a pointer verdict fixes none).
func condsMatch(conds []ArgCond, v *LearnedVerdict) match {
	m := matchYes
	for _, c := range conds {
		i := slices.IndexFunc(v.Args, func(a ArgCond) bool { return a.Index == c.Index })
		if i < 0 || !v.Scalar {
			m = matchMaybe
			continue
		}
		if !c.holds(v.Args[i].Value) {
			return matchNo
		}
	}
	return m
}

func (c ArgCond) holds(x uint64) bool {
	switch c.Op {
	case OpEq:
		return x == c.Value
	case OpNe:
		return x != c.Value
	case OpLt:
		return x < c.Value
	case OpLe:
		return x <= c.Value
	case OpGt:
		return x > c.Value
	case OpGe:
		return x >= c.Value
	case OpMaskedEq:
		return x&c.Mask == c.Value
	}
	return false
}

// ApplyOverlay returns p with the overlay's rules compiled in: scalar
// verdicts as conditional rules ahead of the profile's own for the same
// call (Rule.Learned set, Source "learned.rule[i]"), pointer verdicts in
// Profile.Learned, the overlay file in Sources. A rule that contradicts
// the profile, an overlay that belongs to another profile, or a result
// that fails the profile checks (launcher, alias families, io_uring) is an
// error naming the overlay entry: an overlay never makes a weaker filter.
// [[pending]] and [[refused]] entries are not compiled.
func ApplyOverlay(p *Profile, ov *Overlay) (*Profile, error) {
	if ov == nil {
		return p, nil
	}
	var errs errList
	if ov.Profile != p.Name {
		errs.add(ov.profilePos, "the overlay belongs to another profile: name the right one with --learned FILE",
			"learned overlay is for profile %q, not %q", ov.Profile, p.Name)
		return nil, withIgnoreHint(errs.err())
	}
	out := *p
	out.Sources = append(slices.Clone(p.Sources), ov.File)
	out.Learned = slices.Clone(p.Learned)
	var learned []Rule
	for i, v := range ov.Rules {
		if msg, hint, _ := v.unsafe(); msg != "" {
			errs.add(v.Pos, hint, "%s", msg)
			continue
		}
		if what, _ := v.conflict(p); what != "" {
			errs.add(v.Pos, "delete the entry (the profile's rule stands), or change the profile if the learned verdict is right",
				"learned verdict %s %s conflicts with the profile: %s", v.verdictText(), v.What(), what)
			continue
		}
		if !v.Scalar {
			out.Learned = append(out.Learned, v)
			continue
		}
		ev := v.Evidence
		ev.SeenIn = slices.Clone(ev.SeenIn)
		learned = append(learned, Rule{Syscalls: []string{v.Syscall}, Action: v.Action, Errno: v.Errno, Args: slices.Clone(v.Args),
			Pos: v.Pos, Source: fmt.Sprintf("learned.rule[%d]", i), Profile: p.Name, Learned: &ev})
	}
	if len(errs.errs) > 0 {
		return nil, withIgnoreHint(errs.err())
	}
	// A scalar verdict without scalar arguments decides the call outright:
	// it takes the place of the profile's unconditional notify.
	var rules []Rule
	for _, r := range learned {
		if len(r.Args) > 0 {
			rules = append(rules, r)
		}
	}
	for _, r := range p.Rules {
		if len(r.Args) == 0 {
			r.Syscalls = slices.DeleteFunc(slices.Clone(r.Syscalls), func(s string) bool {
				return slices.ContainsFunc(learned, func(l Rule) bool { return len(l.Args) == 0 && l.Syscalls[0] == s })
			})
			if len(r.Syscalls) == 0 {
				continue
			}
		}
		rules = append(rules, r)
	}
	for _, r := range learned {
		if len(r.Args) == 0 {
			rules = append(rules, r)
		}
	}
	out.Rules = rules
	checkLauncher(&out, &errs)
	checkFamilies(&out, ov.File, &errs)
	checkIOUring(&out, &errs)
	if len(errs.errs) > 0 {
		return nil, withIgnoreHint(errs.err())
	}
	return &out, nil
}

// LoadWithOverlay loads the profile nameOrPath and applies its overlay:
// the file at overlay, or OverlayPath(nameOrPath) when overlay is "". A
// missing overlay file is no error (the profile is returned as loaded,
// with a nil Overlay).
func LoadWithOverlay(nameOrPath, overlay string) (*Profile, *Overlay, error) {
	p, err := Load(nameOrPath)
	if err != nil {
		return nil, nil, err
	}
	if overlay == "" {
		overlay = OverlayPath(nameOrPath)
	}
	ov, err := LoadOverlay(overlay)
	if err != nil {
		return nil, nil, err
	}
	if ov == nil {
		return p, nil, nil
	}
	pp, err := ApplyOverlay(p, ov)
	if err != nil {
		return nil, ov, err
	}
	return pp, ov, nil
}

// ---- merging evidence ----

// NewOverlay returns an empty overlay for the profile called profile.
func NewOverlay(file, profile string) *Overlay {
	return &Overlay{File: file, Profile: profile}
}

// Add merges one piece of evidence: into the entry for the same call when
// the verdict is the same (counts add, times widen); a verdict that flips
// moves the entry to [[refused]] (keep neither); a new call starts in
// [[pending]]; an allow no overlay may hold goes straight to [[refused]].
// Entries already refused only gather the evidence.
func (o *Overlay) Add(v LearnedVerdict) {
	key := v.Key()
	if i := slices.IndexFunc(o.Refused, func(r LearnedVerdict) bool { return r.Key() == key }); i >= 0 {
		r := &o.Refused[i]
		if r.Action == v.Action && r.Errno == v.Errno {
			r.merge(&v.Evidence)
		}
		return
	}
	for _, list := range []*[]LearnedVerdict{&o.Rules, &o.Pending} {
		i := slices.IndexFunc(*list, func(r LearnedVerdict) bool { return r.Key() == key })
		if i < 0 {
			continue
		}
		e := &(*list)[i]
		if e.Action == v.Action && e.Errno == v.Errno {
			e.merge(&v.Evidence)
			return
		}
		flipped := *e
		flipped.Reason = fmt.Sprintf("verdict flipped: %s (%d calls in %d runs), then %s (%d calls in %d runs); kept out until a person decides",
			e.verdictText(), e.Count, e.Runs, v.verdictText(), v.Count, v.Runs)
		flipped.merge(&Evidence{Last: v.Last})
		*list = slices.Delete(*list, i, i+1)
		o.Refused = append(o.Refused, flipped)
		return
	}
	if v.Runs == 0 {
		// Evidence from a run counted already, for an entry the file no
		// longer has (deleted by hand): it starts again with this run.
		v.Runs = 1
	}
	if msg, _, _ := v.unsafe(); msg != "" {
		v.Reason = msg
		o.Refused = append(o.Refused, v)
		return
	}
	o.Pending = append(o.Pending, v)
}

func (e *Evidence) merge(o *Evidence) {
	e.Count += o.Count
	e.Runs += o.Runs
	if e.First.IsZero() || !o.First.IsZero() && o.First.Before(e.First) {
		e.First = o.First
	}
	if o.Last.After(e.Last) {
		e.Last = o.Last
	}
	for _, s := range o.SeenIn {
		if !slices.Contains(e.SeenIn, s) {
			e.SeenIn = append(e.SeenIn, s)
		}
	}
	slices.Sort(e.SeenIn)
}

// Settle promotes the [[pending]] entries with enough evidence (Runs >=
// MinEvidenceRuns, or one answer from a person) to [[rule]] when they pass
// the checks against p (the profile without the overlay), and moves those
// that contradict p to [[refused]]; then it trims [[pending]] to
// MaxOverlayEntries, dropping the entries seen least recently.
func (o *Overlay) Settle(p *Profile) {
	var keep []LearnedVerdict
	for _, v := range o.Pending {
		if v.Runs < MinEvidenceRuns && v.Source != "ask" {
			keep = append(keep, v)
			continue
		}
		what, redundant := v.conflict(p)
		switch {
		case what != "":
			v.Reason = "conflicts with the profile: " + what
			o.Refused = append(o.Refused, v)
		case redundant:
			// The profile decides it so already: nothing to learn.
		default:
			v.Reason = ""
			o.Rules = append(o.Rules, v)
		}
	}
	if len(keep) > MaxOverlayEntries {
		slices.SortStableFunc(keep, func(a, b LearnedVerdict) int { return b.Last.Compare(a.Last) })
		keep = keep[:MaxOverlayEntries]
	}
	o.Pending = keep
	for _, list := range [][]LearnedVerdict{o.Rules, o.Pending, o.Refused} {
		slices.SortStableFunc(list, func(a, b LearnedVerdict) int { return cmp.Compare(a.Key(), b.Key()) })
	}
}

// ---- writing ----

// Marshal writes the overlay as TOML, in the format ParseOverlay reads.
func (o *Overlay) Marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Learned overlay of profile %q, written by archangel.\n", o.Profile)
	b.WriteString(`#
# [[rule]]: verdicts the model tier reached in at least 2 runs (or a person
# gave with learn --ask), compiled at the next launch: scalar ones (args) into
# the kernel filter, path and address ones into the supervisor, ahead of the
# model. [[pending]]: evidence from fewer runs. [[refused]]: verdicts that
# flipped or that no overlay may hold (dangerous calls, credential paths);
# never compiled. Delete an entry to forget it; run with --no-learned to
# ignore this file.

[overlay]
`)
	fmt.Fprintf(&b, "profile = %s\n", tomlQuote(o.Profile))
	for _, sec := range []struct {
		key  string
		list []LearnedVerdict
	}{{"rule", o.Rules}, {"pending", o.Pending}, {"refused", o.Refused}} {
		for _, v := range sec.list {
			fmt.Fprintf(&b, "\n[[%s]]\n", sec.key)
			if v.Reason != "" && sec.key == "refused" {
				fmt.Fprintf(&b, "reason = %s\n", tomlQuote(v.Reason))
			}
			fmt.Fprintf(&b, "syscall = %s\n", tomlQuote(v.Syscall))
			if v.Action == ActionErrno {
				fmt.Fprintf(&b, "verdict = \"deny\"\nerrno = %s\n", tomlQuote(v.Errno.String()))
			} else {
				fmt.Fprintf(&b, "verdict = %s\n", tomlQuote(v.Action.String()))
			}
			if v.Scalar {
				args := make([]string, len(v.Args))
				for i, a := range v.Args {
					args[i] = fmt.Sprintf("{ index = %d, value = %s }", a.Index, tomlUint(a.Value))
				}
				fmt.Fprintf(&b, "args = [%s]", strings.Join(args, ", "))
				if decls := syscallArgs()[v.Syscall]; len(decls) > 0 {
					var names []string
					for _, a := range v.Args {
						if a.Index < len(decls) {
							names = append(names, decls[a.Index])
						}
					}
					if len(names) > 0 {
						fmt.Fprintf(&b, " # %s", strings.Join(names, ", "))
					}
				}
				b.WriteByte('\n')
			} else {
				fmt.Fprintf(&b, "exe = %s\n", tomlQuote(v.Exe))
				if v.Path != "" {
					fmt.Fprintf(&b, "path = %s\n", tomlQuote(v.Path))
				}
				if v.Addr != "" {
					fmt.Fprintf(&b, "addr = %s\n", tomlQuote(v.Addr))
				}
				if v.Access != "" {
					fmt.Fprintf(&b, "access = %s\n", tomlQuote(v.Access))
				}
			}
			fmt.Fprintf(&b, "count = %d\nruns = %d\n", v.Count, v.Runs)
			if !v.First.IsZero() {
				fmt.Fprintf(&b, "first_seen = %s\n", tomlQuote(v.First.UTC().Format(time.RFC3339Nano)))
			}
			if !v.Last.IsZero() {
				fmt.Fprintf(&b, "last_seen = %s\n", tomlQuote(v.Last.UTC().Format(time.RFC3339Nano)))
			}
			fmt.Fprintf(&b, "source = %s\n", tomlQuote(v.Source))
			if len(v.SeenIn) > 0 {
				fmt.Fprintf(&b, "seen_in = %s\n", tomlStrings(v.SeenIn))
			}
		}
	}
	return b.Bytes()
}

// Entries returns how many entries of each kind the overlay holds, for
// messages: rules (scalar and pointer), pending, refused.
func (o *Overlay) Entries() (scalar, pointer, pending, refused int) {
	for _, v := range o.Rules {
		if v.Scalar {
			scalar++
		} else {
			pointer++
		}
	}
	return scalar, pointer, len(o.Pending), len(o.Refused)
}
