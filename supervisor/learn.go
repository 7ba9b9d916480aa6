package supervisor

import (
	"bytes"
	"debug/elf"
	"fmt"
	"net/netip"
	"os"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/archangel-sandbox/archangel/analyzer"
	"github.com/archangel-sandbox/archangel/profiles"
)

// Learning: `archangel learn` runs a command with every system call its
// base profile does not already allow handed to the supervisor, which
// records it and lets it run (CONTINUE: nothing is enforced while
// learning), then writes the smallest profile that allows what was seen.

// LearningProfile returns the profile a learning run is compiled from:
// every call notified, except the launcher's own (which must run before
// the supervisor listens) and what base allows unconditionally (already
// decided; the learned profile extends base). base may be nil.
func LearningProfile(base *profiles.Profile) *profiles.Profile {
	p := &profiles.Profile{Name: "learn", Default: profiles.ActionNotify, Mode: profiles.ModeAudit}
	allow := slices.Clone(profiles.LauncherSyscalls)
	allow = slices.DeleteFunc(allow, func(s string) bool { return s == "execve" })
	if base != nil {
		p.Name = base.Name + "+learn"
		for _, sp := range base.Policies() {
			if sp.Action == profiles.ActionAllow && len(sp.Conds) == 0 && !slices.Contains(allow, sp.Name) {
				allow = append(allow, sp.Name)
			}
		}
	}
	p.Rules = []profiles.Rule{{Syscalls: allow, Action: profiles.ActionAllow, Source: "learn.allow"}}
	return p
}

// Learner records what a learning run does. Safe for concurrent use.
type Learner struct {
	events atomic.Uint64

	mu       sync.Mutex
	syscalls map[string]bool
	files    map[string]analyzer.Access // path → every access seen
	connects map[string]bool            // "ip:port", "unix:/path"
	binds    map[string]bool
	sends    bool                       // sendto/sendmsg with an address, or sendmsg without one
	values   map[string]map[uint64]bool // stableArgs: the values seen
	denied   map[string]bool            // refused by the person (--ask), by question key
}

// NewLearner returns an empty learner.
func NewLearner() *Learner {
	return &Learner{syscalls: map[string]bool{}, files: map[string]analyzer.Access{}, connects: map[string]bool{}, binds: map[string]bool{},
		values: map[string]map[uint64]bool{}}
}

// observe records one notified call (c may be nil for a call that is not
// decoded).
func (l *Learner) observe(name string, args [6]uint64, c *analyzer.Call) {
	l.events.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.syscalls[name] = true
	if i, ok := stableArgs[name]; ok {
		if l.values[name] == nil {
			l.values[name] = map[uint64]bool{}
		}
		l.values[name][args[i]] = true
	}
	if c == nil {
		return
	}
	switch c.Kind {
	case analyzer.KindOpen:
		// Open rules match the file the kernel opens: the path with its
		// symlinks resolved (see enforce.go).
		if c.Path != "" && !c.Truncated {
			p := c.Path
			if cp, err := canonicalOpenPath(c.Path, c.Flags); err == nil {
				p = cp
			}
			l.files[p] |= c.Access
		}
	case analyzer.KindExec:
		if c.Path != "" && !c.Truncated {
			l.files[c.Path] |= c.Access
		}
	case analyzer.KindConnect:
		if a := endpointText(c.Addr); a != "" {
			l.connects[a] = true
		}
		if c.Name != "connect" {
			l.sends = true
		}
	case analyzer.KindBind:
		if c.Addr != nil && c.Addr.Addr.IsValid() && c.Addr.Addr.Port() == 0 {
			// Port 0: the kernel picks an ephemeral port.
			l.binds[netip.AddrPortFrom(c.Addr.Addr.Addr().Unmap(), 0).String()] = true
		} else if a := endpointText(c.Addr); a != "" {
			l.binds[a] = true
		}
	}
}

func endpointText(a *analyzer.SockAddr) string {
	switch {
	case a == nil || a.Unnamed:
		return ""
	case a.Abstract:
		return "unix:@" + a.Unix
	case a.Unix != "":
		return "unix:" + a.Unix
	case a.Addr.IsValid():
		ap := netip.AddrPortFrom(a.Addr.Addr().Unmap(), a.Addr.Port())
		if ap.Port() == 0 {
			return "" // a send on a socket that names no peer port
		}
		if ap.Addr().IsLoopback() && ap.Port() >= ephemeralLo && ap.Port() <= ephemeralHi {
			// A peer on an ephemeral loopback port (a server the command
			// started itself, bound to port 0) will have another port
			// next time: keep the loopback address, widen to the range.
			return fmt.Sprintf("%s:%d-%d", bracket(ap.Addr()), ephemeralLo, ephemeralHi)
		}
		return ap.String()
	}
	return ""
}

// stableArgs are the calls whose verdict a learned profile ties to the
// values seen, by argument index: a program opens sockets of a few
// families, asks prctl a few things, sets one persona. Other values are
// refused (profile default) when the profile is enforced.
var stableArgs = map[string]int{"socket": 0, "prctl": 0, "personality": 0}

// maxStableValues: more distinct values than this and the call is allowed
// whatever the argument (the values were not stable).
const maxStableValues = 8

// Linux's default ip_local_port_range.
const ephemeralLo, ephemeralHi = 32768, 60999

func bracket(a netip.Addr) string {
	if a.Is6() {
		return "[" + a.String() + "]"
	}
	return a.String()
}

// Progress is the one-line state of a learning run, for stderr.
func (l *Learner) Progress() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintf("learning: %d events, %d syscalls, %d files, %d peers", l.events.Load(), len(l.syscalls), len(l.files), len(l.connects)+len(l.binds))
}

// Learned is what a learning run (or several, merged) found: the material
// of a profile.
type Learned struct {
	Syscalls map[string]bool
	Read     map[string]bool // path globs
	Write    map[string]bool
	Exec     map[string]bool
	Connect  map[string]bool
	Bind     map[string]bool
	// Advisory lists the call kinds the profile must accept advisory
	// allows for, to let the command do what it did (see [supervisor]).
	Advisory map[string]bool
	// ArgValues: for the stableArgs calls with few values, the values
	// allowed (a conditional rule each).
	ArgValues map[string]map[uint64]bool
	// What the person refused while learning with --ask.
	DenyFiles, DenyNet, DenySyscalls map[string]bool
}

// LearnEnv names the directories learned paths are written relative to.
type LearnEnv struct{ CWD, HOME, TMPDIR string }

// Result turns what was recorded into path globs: variables substituted,
// process IDs and terminal numbers wildcarded, and a directory whose
// files of one kind of access number at least collapseAt becomes "dir/*".
func (l *Learner) Result(env LearnEnv) *Learned {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := &Learned{Syscalls: map[string]bool{}, Read: map[string]bool{}, Write: map[string]bool{}, Exec: map[string]bool{},
		Connect: maps(l.connects), Bind: maps(l.binds), Advisory: map[string]bool{}, ArgValues: map[string]map[uint64]bool{}}
	defer l.applyDenied(out)
	for name, vals := range l.values {
		if len(vals) <= maxStableValues {
			out.ArgValues[name] = map[uint64]bool{}
			for v := range vals {
				out.ArgValues[name][v] = true
			}
		}
	}
	if len(l.binds) > 0 {
		out.Advisory["bind"] = true // a bind by address is checked, then run
	}
	if l.sends {
		out.Advisory["connect"] = true // sendto/sendmsg name their peer in memory
	}
	for s := range l.syscalls {
		out.Syscalls[s] = true
	}
	byAccess := map[analyzer.Access][]string{}
	for p, acc := range l.files {
		p = generalize(p, env)
		for _, a := range []analyzer.Access{analyzer.AccessRead, analyzer.AccessWrite, analyzer.AccessExec} {
			if acc&a != 0 {
				byAccess[a] = append(byAccess[a], p)
			}
		}
	}
	for a, dst := range map[analyzer.Access]map[string]bool{analyzer.AccessRead: out.Read, analyzer.AccessWrite: out.Write} {
		for _, g := range collapse(byAccess[a]) {
			dst[g] = true
		}
	}
	// Exec stays exact: an exact allow-list is what Landlock can enforce.
	// The kernel also executes a program's ELF interpreter and a script's
	// #! interpreter; under Landlock those need the exec right too.
	for p := range l.files {
		if l.files[p]&analyzer.AccessExec == 0 {
			continue
		}
		out.Exec[generalize(p, env)] = true
		for _, interp := range interpreters(p) {
			out.Exec[generalize(interp, env)] = true
		}
	}
	return out
}

// interpreters returns what the kernel executes on behalf of an execve of
// p: a script's #! interpreter (and, recursively, its ELF interpreter) or
// an ELF program's PT_INTERP.
func interpreters(p string) []string {
	var out []string
	for depth := 0; depth < 4 && p != ""; depth++ {
		next := ""
		if f, err := os.Open(p); err == nil {
			head := make([]byte, 256)
			n, _ := f.Read(head)
			f.Close()
			head = head[:n]
			switch {
			case bytes.HasPrefix(head, []byte("#!")):
				line, _, _ := bytes.Cut(head[2:], []byte("\n"))
				if fields := strings.Fields(string(line)); len(fields) > 0 {
					next = fields[0]
				}
			case bytes.HasPrefix(head, []byte("\x7fELF")):
				if ef, err := elf.Open(p); err == nil {
					for _, prog := range ef.Progs {
						if prog.Type == elf.PT_INTERP {
							b := make([]byte, prog.Filesz)
							if _, err := prog.ReadAt(b, 0); err == nil {
								next = strings.TrimRight(string(b), "\x00")
							}
						}
					}
					ef.Close()
				}
			}
		}
		if next == "" || slices.Contains(out, next) {
			break
		}
		out = append(out, next)
		p = next
	}
	return out
}

func maps(m map[string]bool) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

const collapseAt = 4

// generalize rewrites a path into the form a profile keeps: ${CWD},
// ${HOME}, ${TMPDIR} for the run's directories (the longest that applies),
// "*" for process IDs under /proc and for terminal numbers.
func generalize(p string, env LearnEnv) string {
	type v struct{ name, dir string }
	vars := []v{{"${CWD}", env.CWD}, {"${HOME}", env.HOME}, {"${TMPDIR}", env.TMPDIR}}
	sort.SliceStable(vars, func(i, j int) bool { return len(vars[i].dir) > len(vars[j].dir) })
	for _, x := range vars {
		if x.dir == "" || x.dir == "/" {
			continue
		}
		if p == x.dir {
			return x.name
		}
		if rest, ok := strings.CutPrefix(p, x.dir+"/"); ok {
			return x.name + "/" + escapeGlobText(rest)
		}
	}
	parts := strings.Split(p, "/")
	for i, s := range parts {
		if i >= 1 && (parts[i-1] == "proc" && i == 2 || parts[i-1] == "pts" && i == 3 || parts[i-1] == "fd" && i >= 4 && parts[1] == "proc") && isDigits(s) {
			parts[i] = "*"
		} else if s != "*" {
			parts[i] = escapeGlobText(s)
		}
	}
	return strings.Join(parts, "/")
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func escapeGlobText(s string) string {
	if !strings.ContainsAny(s, `*?[\`) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// collapse replaces the files of a directory with "dir/*" when there are
// collapseAt or more of them.
func collapse(paths []string) []string {
	byDir := map[string][]string{}
	for _, p := range paths {
		byDir[path.Dir(p)] = append(byDir[path.Dir(p)], p)
	}
	var out []string
	for dir, ps := range byDir {
		if len(ps) >= collapseAt && dir != "/" {
			out = append(out, dir+"/*")
			continue
		}
		out = append(out, ps...)
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// Merge adds what o learned.
func (l *Learned) Merge(o *Learned) {
	if l.Advisory == nil {
		l.Advisory = map[string]bool{}
	}
	if l.ArgValues == nil {
		l.ArgValues = map[string]map[uint64]bool{}
	}
	for name, vals := range o.ArgValues {
		if l.Syscalls[name] && l.ArgValues[name] == nil {
			continue // allowed whatever the argument on one side: stays so
		}
		if l.ArgValues[name] == nil {
			l.ArgValues[name] = map[uint64]bool{}
		}
		for v := range vals {
			l.ArgValues[name][v] = true
		}
	}
	for name := range l.ArgValues {
		if o.Syscalls[name] && o.ArgValues[name] == nil {
			delete(l.ArgValues, name) // unconditional on the other side
		}
	}
	for _, pair := range [][2]map[string]bool{{l.Syscalls, o.Syscalls}, {l.Read, o.Read}, {l.Write, o.Write},
		{l.Exec, o.Exec}, {l.Connect, o.Connect}, {l.Bind, o.Bind}, {l.Advisory, o.Advisory}} {
		for k := range pair[1] {
			pair[0][k] = true
		}
	}
}

// FromProfile reads back a learned profile (as WriteProfile writes it)
// for merging. A profile whose syscall rules are not plain allow or notify
// lists cannot be merged without changing what it means; that is an error
// naming the rule.
func FromProfile(p *profiles.Profile) (*Learned, error) {
	out := &Learned{Syscalls: map[string]bool{}, Read: map[string]bool{}, Write: map[string]bool{}, Exec: map[string]bool{},
		Connect: map[string]bool{}, Bind: map[string]bool{}, Advisory: map[string]bool{}, ArgValues: map[string]map[uint64]bool{}}
	for _, k := range p.Supervisor.Advisory {
		out.Advisory[k] = true
	}
	for _, r := range p.Rules {
		switch {
		case strings.HasPrefix(r.Source, "syscalls.rule") || len(r.Args) > 0:
			// The fast-path sendto rule and the stable-value rules
			// WriteProfile adds; anything else conditional is not the
			// learner's.
			if len(r.Syscalls) == 1 && r.Action == profiles.ActionAllow && len(r.Args) == 1 && r.Args[0].Op == profiles.OpEq {
				if i, ok := stableArgs[r.Syscalls[0]]; ok && r.Args[0].Index == i {
					if out.ArgValues[r.Syscalls[0]] == nil {
						out.ArgValues[r.Syscalls[0]] = map[uint64]bool{}
					}
					out.ArgValues[r.Syscalls[0]][r.Args[0].Value] = true
					continue
				}
			}
			if !(len(r.Syscalls) == 1 && r.Syscalls[0] == "sendto" && r.Action == profiles.ActionAllow) {
				return nil, fmt.Errorf("%s: %s: a conditional rule; merge combines learned profiles (allow and notify lists) only", r.Pos, r.Source)
			}
		case r.Action == profiles.ActionAllow || r.Action == profiles.ActionNotify:
			for _, s := range r.Syscalls {
				out.Syscalls[s] = true
			}
		case r.Source == "profile.io_uring":
		default:
			return nil, fmt.Errorf("%s: %s %s: merge combines what programs were seen to do; a %s rule is a decision to keep by hand (put it in a profile the merged one extends)",
				r.Pos, r.Source, strings.Join(r.Syscalls, " "), r.Action)
		}
	}
	for _, pair := range []struct {
		dst map[string]bool
		src []profiles.Pattern
	}{{out.Read, p.Files.Read}, {out.Write, p.Files.Write}, {out.Exec, p.Files.Exec}} {
		for _, pt := range pair.src {
			pair.dst[pt.Text] = true
		}
	}
	for _, e := range p.Network.Connect {
		out.Connect[e.Text] = true
	}
	for _, e := range p.Network.Bind {
		out.Bind[e.Text] = true
	}
	return out, nil
}

// ProfileHeader is what WriteProfile says about the run in the file.
type ProfileHeader struct {
	Name    string
	Extends string   // the base profile, or ""
	Command []string // what ran
	Status  string   // "exit status 0", "killed by signal 9", "merged from a.toml b.toml"
	Note    string   // e.g. the command failed: what was observed is still written
}

// credentialPaths are denied in every learned profile that the command
// did not need them in (the list is shared with the overlay's checks).
var credentialPaths = profiles.CredentialPaths

// familyOf maps the calls a learned profile hands to the supervisor to
// the group it notifies them with.
var notifyFamilies = []struct {
	group   string
	members []string
	why     string
}{
	{"@exec", []string{"execve", "execveat"}, "programs started, checked against [files] exec"},
	{"@open", []string{"open", "openat", "openat2", "creat"}, "files opened, carried out by archangel against [files] read/write (race-free)"},
	{"@connect", []string{"connect", "sendto", "sendmsg", "sendmmsg"}, "peers, checked against [network] connect"},
	{"bind", []string{"bind"}, "local addresses, checked against [network] bind"},
}

// WriteProfile writes the learned profile as TOML: the system calls seen
// (whole groups where every member was used), the calls whose arguments
// matter handed to the supervisor, and the files, programs and peers seen
// as rules. It never writes a rule wider than the evidence, except that a
// directory with many files touched becomes "dir/*".
func (l *Learned) WriteProfile(h ProfileHeader) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# Learned by archangel learn")
	if len(h.Command) > 0 {
		quoted := make([]string, len(h.Command))
		for i, a := range h.Command {
			quoted[i] = a
			if strings.ContainsAny(a, " \t\n\"'\\") {
				quoted[i] = strconv.Quote(a) // one line, whatever the argument holds
			}
		}
		fmt.Fprintf(&b, " from: %s", strings.Join(quoted, " "))
	}
	fmt.Fprintf(&b, "\n# %s.\n", h.Status)
	if h.Note != "" {
		fmt.Fprintf(&b, "# %s\n", h.Note)
	}
	b.WriteString("# Review it, then enforce it: archangel run --profile THIS.toml -- ...\n\n[profile]\n")
	fmt.Fprintf(&b, "name = %q\n", h.Name)
	if h.Extends != "" {
		fmt.Fprintf(&b, "extends = [%q]\n", h.Extends)
	}
	b.WriteString("default = \"deny\"\nerrno = \"EPERM\"\n\n[syscalls]\n")

	used := maps(l.Syscalls)
	for _, s := range profiles.LauncherSyscalls {
		used[s] = true // archangel's launcher needs them after the filter exists
	}
	var notify []string
	for _, f := range notifyFamilies {
		seen := false
		for _, m := range f.members {
			seen = seen || used[m]
		}
		if !seen {
			continue
		}
		notify = append(notify, f.group)
		for _, m := range f.members {
			delete(used, m)
		}
	}
	for name := range l.ArgValues {
		delete(used, name) // allowed by value below
	}
	var iouring []string
	for s := range used {
		if strings.HasPrefix(s, "io_uring_") {
			iouring = append(iouring, s)
			delete(used, s)
		}
	}
	// Whole groups where every member known here was used; largest first.
	var allow []string
	groups := profiles.GroupNames()
	sort.SliceStable(groups, func(i, j int) bool {
		a, _ := profiles.Group(groups[i])
		c, _ := profiles.Group(groups[j])
		return len(a) > len(c)
	})
	for _, g := range groups {
		if g == "@known" || g == "@launcher" {
			continue
		}
		members, _ := profiles.Group(g)
		if len(members) < 3 {
			continue
		}
		all := true
		for _, m := range members {
			all = all && used[m]
		}
		if !all {
			continue
		}
		allow = append(allow, g)
		for _, m := range members {
			delete(used, m)
		}
	}
	names := make([]string, 0, len(used))
	for s := range used {
		if _, ok := profiles.SyscallNr(s); ok {
			names = append(names, s)
		}
	}
	sort.Strings(names)
	sort.Strings(allow)
	allow = append(allow, names...)
	b.WriteString("allow = [\n")
	for _, s := range allow {
		fmt.Fprintf(&b, "    %q,\n", s)
	}
	b.WriteString("]\n")
	if len(l.DenySyscalls) > 0 {
		b.WriteString("# Refused while learning (--ask).\n")
		writeInline(&b, "deny", l.DenySyscalls)
	}
	if len(notify) > 0 {
		b.WriteString("# Handed to the supervisor, which decides them by the rules below:\n")
		for _, f := range notifyFamilies {
			if slices.Contains(notify, f.group) {
				fmt.Fprintf(&b, "#   %s: %s\n", f.group, f.why)
			}
		}
		b.WriteString("notify = [")
		for i, g := range notify {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%q", g)
		}
		b.WriteString("]\n")
	}
	if len(iouring) > 0 {
		sort.Strings(iouring)
		fmt.Fprintf(&b, "# io_uring was used (%s): it bypasses per-call filtering, so it stays denied\n# (ENOSYS: programs fall back). Allow it knowingly with io_uring = true.\n", strings.Join(iouring, ", "))
	}
	var stable []string
	for name := range l.ArgValues {
		stable = append(stable, name)
	}
	sort.Strings(stable)
	for _, name := range stable {
		vals := make([]uint64, 0, len(l.ArgValues[name]))
		for v := range l.ArgValues[name] {
			vals = append(vals, v)
		}
		slices.Sort(vals)
		fmt.Fprintf(&b, "\n# %s: only the values of argument %d the command used (%d); others are refused.\n", name, stableArgs[name], len(vals))
		for _, v := range vals {
			fmt.Fprintf(&b, "[[syscalls.rule]]\nnames = [%q]\naction = \"allow\"\nargs = [{ index = %d, op = \"eq\", value = %d }]\n", name, stableArgs[name], v)
		}
	}
	if slices.Contains(notify, "@connect") {
		b.WriteString("\n# sendto on a connected socket names no peer: keep it in the kernel's fast path.\n[[syscalls.rule]]\nnames = [\"sendto\"]\naction = \"allow\"\nargs = [{ index = 4, op = \"eq\", value = 0 }]\n")
	}
	writeList := func(key string, m map[string]bool) {
		if len(m) == 0 {
			return
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintf(&b, "%s = [\n", key)
		for _, k := range keys {
			fmt.Fprintf(&b, "    %q,\n", k)
		}
		b.WriteString("]\n")
	}
	if len(l.Read)+len(l.Write)+len(l.Exec) > 0 {
		b.WriteString("\n[files]\n")
		writeList("read", l.Read)
		writeList("write", l.Write)
		writeList("exec", l.Exec)
		// A directory glob learned from siblings ("/etc/*") must not
		// reach the secrets in it: they stay denied (more specific rules
		// win) unless the command was seen reading them.
		deny := map[string]bool{}
		for d := range l.DenyFiles {
			deny[d] = true
		}
		for _, d := range credentialPaths {
			seen := false
			for p := range l.Read {
				seen = seen || p == d
			}
			if !seen {
				deny[d] = true
			}
		}
		b.WriteString("# Secrets the command was not seen reading, kept out of reach of the globs above.\n")
		writeList("deny", deny)
	}
	if len(l.Connect)+len(l.Bind)+len(l.DenyNet) > 0 {
		b.WriteString("\n[network]\n")
		writeList("connect", l.Connect)
		writeList("bind", l.Bind)
		writeList("deny", l.DenyNet)
	}
	b.WriteString("\n[supervisor]\n# What no rule above allows is refused.\ndefault = \"deny\"\n")
	if len(l.Advisory) > 0 {
		b.WriteString("# The command did these; archangel checks them, then the kernel runs them\n# (a thread rewriting the address in between gets around the check).\n")
		writeInline(&b, "advisory", l.Advisory)
	}
	if len(l.Exec) > 0 {
		b.WriteString("# Exec: the allow-list above is exact paths, which Landlock enforces race-free.\n")
	}
	return []byte(b.String())
}

// canonicalOpenPath resolves the symlinks an open with flags follows.
func canonicalOpenPath(p string, flags uint64) (string, error) {
	cz := canonicalizer{fresh: true}
	return cz.open(p, flags)
}

// writeInline writes key = ["a", "b"] with the set's members sorted.
func writeInline(b *strings.Builder, key string, set map[string]bool) {
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(b, "%s = [", key)
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(b, "%q", k)
	}
	b.WriteString("]\n")
}
