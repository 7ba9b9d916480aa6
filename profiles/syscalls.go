package profiles

import (
	_ "embed"
	"fmt"
	"slices"
	"sort"
	"strings"
)

var (
	syscallByName = map[string]int{}
	syscallByNr   []string // index nr; "" for gaps
	syscallSorted []string
)

func init() {
	maxNr := 0
	for _, s := range syscallTable {
		maxNr = max(maxNr, s.Nr)
	}
	syscallByNr = make([]string, maxNr+1)
	for _, s := range syscallTable {
		syscallByName[s.Name] = s.Nr
		syscallByNr[s.Nr] = s.Name
		syscallSorted = append(syscallSorted, s.Name)
	}
	sort.Strings(syscallSorted)
}

// SyscallNr returns the x86-64 number of the system call called name.
func SyscallNr(name string) (int, bool) {
	nr, ok := syscallByName[name]
	return nr, ok
}

// SyscallName returns the x86-64 system call numbered nr.
func SyscallName(nr int) (string, bool) {
	if nr < 0 || nr >= len(syscallByNr) || syscallByNr[nr] == "" {
		return "", false
	}
	return syscallByNr[nr], true
}

// SyscallNames returns every x86-64 system call name, sorted.
func SyscallNames() []string { return slices.Clone(syscallSorted) }

// LauncherSyscalls are the system calls archangel's launcher shim makes
// after it has loaded the filter and before the target's execve: it writes
// the listener's fd number to the supervisor, which takes the listener with
// pidfd_getfd (write), waits for the go-ahead (read), restores its signal
// mask, and execs. (Where pidfd_getfd is unavailable the launcher falls
// back to SCM_RIGHTS, which needs sendmsg; the supervisor checks that at
// launch, not here.)
// Every profile must let them run (execve may also be notified: it is the
// first notification the supervisor sees); Load checks it.
var LauncherSyscalls = []string{"read", "write", "rt_sigprocmask", "rt_sigreturn", "execve", "exit_group", "exit"}

// aliasFamilies are system calls that reach the same kernel operation; a
// filter that guards one member and lets another run is bypassed by the
// other. Load checks that they are guarded together.
var aliasFamilies = [][]string{
	{"open", "openat", "openat2", "creat"},
	{"execve", "execveat"},
	{"connect", "sendto", "sendmsg", "sendmmsg"},
	{"rename", "renameat", "renameat2"},
	{"link", "linkat"},
	{"symlink", "symlinkat"},
	{"unlink", "unlinkat", "rmdir"},
	{"mkdir", "mkdirat"},
	{"chmod", "fchmodat", "fchmodat2"},
	{"chown", "lchown", "fchownat"},
	{"clone", "clone3"},
	{"io_uring_setup", "io_uring_enter", "io_uring_register"},
}

// AliasFamilies returns the families of system calls that must be guarded
// together (a copy).
func AliasFamilies() [][]string {
	out := make([][]string, len(aliasFamilies))
	for i, f := range aliasFamilies {
		out[i] = slices.Clone(f)
	}
	return out
}

//go:embed data/systemd-groups.txt
var systemdGroupsTxt string

//go:embed data/archangel-groups.txt
var archangelGroupsTxt string

type groupDef struct {
	name    string
	help    string
	members []string // as written: names and @groups
	origin  string   // "systemd" or "archangel"
}

var (
	groupDefs     = map[string]*groupDef{}
	groupExpanded = map[string][]string{}
	groupSorted   []string
	knownAnyArch  = map[string]bool{} // systemd's @known: names on any architecture
)

func init() {
	for _, src := range []struct{ origin, text string }{
		{"systemd", systemdGroupsTxt},
		{"archangel", archangelGroupsTxt},
	} {
		if err := parseGroups(src.origin, src.text); err != nil {
			panic(err)
		}
	}
	for name := range groupDefs {
		m, err := expandGroup(name, nil)
		if err != nil {
			panic(err)
		}
		groupExpanded[name] = m
		groupSorted = append(groupSorted, name)
	}
	sort.Strings(groupSorted)
	var walk func(string)
	walk = func(g string) {
		for _, m := range groupDefs[g].members {
			if strings.HasPrefix(m, "@") {
				walk(m)
			} else {
				knownAnyArch[m] = true
			}
		}
	}
	walk("@known")
}

func parseGroups(origin, text string) error {
	help := map[string]string{}
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "# @"); ok {
			if name, h, ok := strings.Cut(rest, ": "); ok {
				help["@"+name] = h
			}
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		name, members, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(name, "@") {
			return fmt.Errorf("%s groups line %d: want \"@group: members\"", origin, i+1)
		}
		if prev, dup := groupDefs[name]; dup {
			return fmt.Errorf("%s groups line %d: group %s already defined by %s", origin, i+1, name, prev.origin)
		}
		groupDefs[name] = &groupDef{name: name, help: help[name], members: strings.Fields(members), origin: origin}
	}
	return nil
}

func expandGroup(name string, stack []string) ([]string, error) {
	if slices.Contains(stack, name) {
		return nil, fmt.Errorf("syscall group cycle: %s", strings.Join(append(stack, name), " -> "))
	}
	def, ok := groupDefs[name]
	if !ok {
		return nil, fmt.Errorf("syscall group %s (in %s) is not defined", name, strings.Join(stack, " -> "))
	}
	var out []string
	seen := map[string]bool{}
	for _, m := range def.members {
		var add []string
		if strings.HasPrefix(m, "@") {
			sub, err := expandGroup(m, append(stack, name))
			if err != nil {
				return nil, err
			}
			add = sub
		} else if _, known := syscallByName[m]; known {
			add = []string{m}
		} // unknown on x86-64: skipped silently, as systemd does
		for _, s := range add {
			if !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	return out, nil
}

// Group returns the x86-64 system calls of a group ("@basic-io"; the "@"
// may be left out), nested groups expanded, in the order written, without
// duplicates. Members not known on x86-64 are skipped, as systemd does.
func Group(name string) ([]string, bool) {
	if !strings.HasPrefix(name, "@") {
		name = "@" + name
	}
	m, ok := groupExpanded[name]
	return slices.Clone(m), ok
}

// GroupNames returns every group name, with its "@", sorted.
func GroupNames() []string { return slices.Clone(groupSorted) }

// GroupHelp returns a group's one-line description.
func GroupHelp(name string) string {
	if !strings.HasPrefix(name, "@") {
		name = "@" + name
	}
	if d, ok := groupDefs[name]; ok {
		return d.help
	}
	return ""
}

// didYouMean returns the candidate closest to word by edit distance, if it
// is close enough to be a plausible typo.
func didYouMean(word string, candidates []string) (string, bool) {
	best, bestD := "", -1
	for _, c := range candidates {
		d := editDistance(word, c)
		if bestD < 0 || d < bestD || (d == bestD && c < best) {
			best, bestD = c, d
		}
	}
	limit := 2
	if len(word) <= 3 {
		limit = 1
	}
	if len(word) >= 10 {
		limit = 3
	}
	if bestD < 0 || bestD > limit || bestD >= len(word) {
		return "", false
	}
	return best, true
}

func didYouMeanSuffix(word string, candidates []string) string {
	if s, ok := didYouMean(word, candidates); ok {
		return fmt.Sprintf(" (did you mean %q?)", s)
	}
	return ""
}

// editDistance is the Damerau (optimal string alignment) distance, so that
// a swap of two neighbours ("excev") counts as one typo.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range rb {
		d[0][j+1] = j + 1
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

func sortStrings(s []string) { sort.Strings(s) }
