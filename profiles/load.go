package profiles

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

//go:embed builtin/*.toml
var builtinFS embed.FS

// Builtin returns the TOML text of the built-in profile called name.
func Builtin(name string) ([]byte, bool) {
	if !validName(name) {
		return nil, false
	}
	data, err := builtinFS.ReadFile("builtin/" + name + ".toml")
	return data, err == nil
}

// BuiltinNames returns the names of the built-in profiles, sorted.
func BuiltinNames() []string {
	entries, _ := fs.ReadDir(builtinFS, "builtin")
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".toml"); ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// Defaults for what no profile in an extends chain sets.
const (
	DefaultAction           = ActionErrno // [profile] default
	DefaultErrno      Errno = 1           // EPERM, for every errno not set
	DefaultBudget           = 100 * time.Microsecond
	DefaultModel            = "none"
	DefaultOnTimeout        = ActionErrno
	DefaultSupervisor       = ActionErrno // fail closed: an undecided notification is denied
)

// SearchDirs returns the directories Load looks in for a profile name, in
// order: $ARCHANGEL_PROFILE_PATH (colon-separated), /etc/archangel/profiles,
// $XDG_CONFIG_HOME/archangel/profiles (or ~/.config/...). The built-ins
// come last.
func SearchDirs() []string {
	var dirs []string
	for _, d := range filepath.SplitList(os.Getenv("ARCHANGEL_PROFILE_PATH")) {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	dirs = append(dirs, "/etc/archangel/profiles")
	if cfg, err := os.UserConfigDir(); err == nil {
		dirs = append(dirs, filepath.Join(cfg, "archangel", "profiles"))
	}
	return dirs
}

// isPath tells a file reference from a profile name.
func isPath(ref string) bool { return strings.Contains(ref, "/") || strings.HasSuffix(ref, ".toml") }

// source is one profile document found by name or path.
type source struct {
	data []byte
	file string // in positions
	id   string // for cycle detection and Profile.Sources: a path or "builtin:NAME"
	dir  string // for relative extends; "" for built-ins
	name string // default profile name
}

var errNotFound = errors.New("not found")

// find resolves a name or path; dir is the directory relative paths are
// relative to ("" = the working directory); builtin tells that the
// reference comes from a built-in profile.
func find(ref, dir string, fromBuiltin bool) (*source, error) {
	if isPath(ref) {
		if fromBuiltin && !filepath.IsAbs(ref) {
			return nil, fmt.Errorf("built-in profiles extend others by name, not by relative path")
		}
		p := ref
		if !filepath.IsAbs(p) && dir != "" {
			p = filepath.Join(dir, p)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("%w: %s", errNotFound, p)
			}
			return nil, err
		}
		return &source{data: data, file: p, id: absPath(p), dir: filepath.Dir(p),
			name: strings.TrimSuffix(filepath.Base(p), ".toml")}, nil
	}
	if !validName(ref) {
		return nil, fmt.Errorf("%q is not a profile name (letters, digits, '-', '_', '.') or path", ref)
	}
	for _, d := range SearchDirs() {
		p := filepath.Join(d, ref+".toml")
		data, err := os.ReadFile(p)
		if err == nil {
			return &source{data: data, file: p, id: absPath(p), dir: d, name: ref}, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	if data, ok := Builtin(ref); ok {
		return &source{data: data, file: "builtin:" + ref + ".toml", id: "builtin:" + ref, name: ref}, nil
	}
	return nil, errNotFound
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return filepath.Clean(p)
}

func notFoundHint(ref string) string {
	if isPath(ref) {
		return "extends paths are relative to the extending file"
	}
	hint := "looked in " + strings.Join(SearchDirs(), ", ") + " and the built-ins (" + strings.Join(BuiltinNames(), ", ") + ")"
	if s, ok := didYouMean(ref, BuiltinNames()); ok {
		hint = fmt.Sprintf("did you mean %q? ", s) + hint
	}
	return hint
}

// Load reads, validates and resolves a profile. nameOrPath is a file when
// it contains a '/' or ends in ".toml"; otherwise a name looked up in
// SearchDirs, then among the built-ins. Every problem is reported at once:
// the error joins *Error values ("file:line:col: what" and a hint).
func Load(nameOrPath string) (*Profile, error) {
	src, err := find(nameOrPath, "", false)
	if err != nil {
		if errors.Is(err, errNotFound) {
			if isPath(nameOrPath) {
				return nil, fmt.Errorf("load profile %q: file not found", nameOrPath)
			}
			return nil, fmt.Errorf("load profile %q: not found\n\thint: %s", nameOrPath, notFoundHint(nameOrPath))
		}
		return nil, fmt.Errorf("load profile %q: %w", nameOrPath, err)
	}
	return load(src)
}

// Parse validates and resolves one profile document; file names it in
// error positions and anchors relative extends paths. Bases named in
// extends are found as Load finds them.
func Parse(file string, data []byte) (*Profile, error) {
	name := strings.TrimSuffix(filepath.Base(file), ".toml")
	return load(&source{data: data, file: file, id: absPath(file), dir: filepath.Dir(file), name: name})
}

func load(src *source) (*Profile, error) {
	var errs errList
	r := &resolver{errs: &errs, done: map[string]*layer{}}
	l := r.resolve(src, nil)
	if l == nil || len(errs.errs) > 0 {
		return nil, errs.err()
	}
	p := l.profile()
	checkProfile(p, l, &errs)
	if err := errs.err(); err != nil {
		return nil, err
	}
	return p, nil
}

type resolver struct {
	errs *errList
	done map[string]*layer // by source id
}

// resolve parses src and merges it over its bases; stack holds the ids of
// the profiles that extend it.
func (r *resolver) resolve(src *source, stack []string) *layer {
	if l, ok := r.done[src.id]; ok {
		return l
	}
	doc := parseDoc(src.file, src.data, r.errs)
	if doc == nil {
		return nil
	}
	if !doc.nameSet {
		doc.name = src.name
	}
	doc.sources = []string{src.id}
	for i := range doc.rules {
		doc.rules[i].Profile = doc.name
	}
	stack = append(stack, src.id)
	acc := &layer{file: src.file, named: map[string]bool{}}
	good := true
	for _, ext := range doc.extends {
		base, err := find(ext.text, src.dir, src.dir == "" && strings.HasPrefix(src.id, "builtin:"))
		if err != nil {
			good = false
			if errors.Is(err, errNotFound) {
				r.errs.add(ext.pos, notFoundHint(ext.text), "base profile %q in profile.extends not found", ext.text)
			} else {
				r.errs.add(ext.pos, "", "base profile %q in profile.extends: %v", ext.text, err)
			}
			continue
		}
		if i := slices.Index(stack, base.id); i >= 0 {
			good = false
			cycle := append(slices.Clone(stack[i:]), base.id)
			for j, id := range cycle {
				cycle[j] = displayID(id)
			}
			r.errs.add(ext.pos, "remove one of the extends entries", "extends cycle: %s", strings.Join(cycle, " -> "))
			continue
		}
		bl := r.resolve(base, stack)
		if bl == nil {
			good = false
			continue
		}
		acc.overlay(bl)
	}
	if !good {
		return nil
	}
	acc.overlay(doc)
	acc.name, acc.nameSet = doc.name, true
	acc.extends = doc.extends
	acc.file = doc.file
	r.done[src.id] = acc
	return acc
}

func displayID(id string) string {
	if strings.HasPrefix(id, "builtin:") {
		return id
	}
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, id); err == nil && !strings.HasPrefix(rel, "..") {
			return rel
		}
	}
	return id
}

// overlay merges d over l: d's rules replace l's for every syscall d
// names; scalars d sets override; path, network and exec rules append.
func (l *layer) overlay(d *layer) {
	var kept []Rule
	for _, r := range l.rules {
		var s []string
		for _, name := range r.Syscalls {
			if !d.named[name] {
				s = append(s, name)
			}
		}
		if len(s) > 0 {
			r.Syscalls = s
			kept = append(kept, r)
		}
	}
	l.rules = append(kept, d.rules...)
	for name := range d.named {
		l.named[name] = true
	}
	set := func(dst **Action, src *Action) {
		if src != nil {
			*dst = src
		}
	}
	if d.description != nil {
		l.description = d.description
	}
	if d.def != nil {
		l.def, l.defPos = d.def, d.defPos
	}
	if d.defErrno != nil {
		l.defErrno, l.defErrnoPos = d.defErrno, d.defErrnoPos
	}
	if d.mode != nil {
		l.mode = d.mode
	}
	if d.ioUring != nil {
		l.ioUring = d.ioUring
	}
	l.files.Read = append(l.files.Read, d.files.Read...)
	l.files.Write = append(l.files.Write, d.files.Write...)
	l.files.Exec = append(l.files.Exec, d.files.Exec...)
	l.files.Deny = append(l.files.Deny, d.files.Deny...)
	l.network.Connect = append(l.network.Connect, d.network.Connect...)
	l.network.Bind = append(l.network.Bind, d.network.Bind...)
	l.network.Deny = append(l.network.Deny, d.network.Deny...)
	l.exec.Rules = append(l.exec.Rules, d.exec.Rules...)
	if d.supDefault != nil {
		l.supDefault, l.supDefaultPos = d.supDefault, d.supDefaultPos
	}
	if d.supErrno != nil {
		l.supErrno = d.supErrno
	}
	if d.cacheSize != nil {
		l.cacheSize = d.cacheSize
	}
	if d.advisory != nil {
		l.advisory = d.advisory
	}
	if d.patterns != nil {
		l.patterns = d.patterns
	}
	if d.model != nil {
		l.model, l.modelPos = d.model, d.modelPos
	}
	if d.budget != nil {
		l.budget = d.budget
	}
	set(&l.onTimeout, d.onTimeout)
	if d.endpoint != nil {
		l.endpoint, l.endPos = d.endpoint, d.endPos
	}
	if d.chatModel != nil {
		l.chatModel = d.chatModel
	}
	if d.modelAudit != nil {
		l.modelAudit = d.modelAudit
	}
	if d.sequence != nil {
		l.sequence = d.sequence
	}
	for _, s := range d.sources {
		if !slices.Contains(l.sources, s) {
			l.sources = append(l.sources, s)
		}
	}
}

// profile fills in the defaults and copies l into a Profile.
func (l *layer) profile() *Profile {
	p := &Profile{
		Name:         l.name,
		Default:      DefaultAction,
		DefaultErrno: DefaultErrno,
		DefaultPos:   Pos{File: l.file, Line: 1},
		Mode:         ModeEnforce,
		Files:        l.files,
		Network:      l.network,
		Exec:         l.exec,
		Supervisor: Supervisor{
			Default: DefaultSupervisor, DefaultErrno: DefaultErrno,
		},
		Analyzer: Analyzer{Model: DefaultModel, Budget: DefaultBudget, OnTimeout: DefaultOnTimeout},
	}
	for _, e := range l.extends {
		p.Extends = append(p.Extends, e.text)
	}
	p.Sources = slices.Clone(l.sources)
	if l.description != nil {
		p.Description = *l.description
	}
	if l.def != nil {
		p.Default, p.DefaultPos = *l.def, l.defPos
	}
	if l.defErrno != nil {
		p.DefaultErrno = *l.defErrno
	}
	if p.Default != ActionErrno {
		p.DefaultErrno = 0
	}
	if l.mode != nil {
		p.Mode = *l.mode
	}
	if l.ioUring != nil {
		p.IOUring = *l.ioUring
	}
	p.Rules = make([]Rule, len(l.rules))
	for i, r := range l.rules {
		r.Syscalls = slices.Clone(r.Syscalls)
		r.Args = slices.Clone(r.Args)
		p.Rules[i] = r
	}
	p.implicitIOUringDeny()
	if l.supDefault != nil {
		p.Supervisor.Default, p.Supervisor.DefaultPos = *l.supDefault, l.supDefaultPos
	}
	if l.supErrno != nil {
		p.Supervisor.DefaultErrno = *l.supErrno
	}
	if p.Supervisor.Default != ActionErrno {
		p.Supervisor.DefaultErrno = 0
	}
	if l.cacheSize != nil {
		p.Supervisor.CacheSize = *l.cacheSize
	}
	if l.advisory != nil {
		p.Supervisor.Advisory = *l.advisory
	}
	if l.patterns != nil {
		p.Supervisor.Patterns = *l.patterns
	}
	if l.model != nil {
		p.Analyzer.Model = *l.model
	}
	if l.budget != nil {
		p.Analyzer.Budget, p.Analyzer.BudgetSet = *l.budget, true
	}
	if l.onTimeout != nil {
		p.Analyzer.OnTimeout, p.Analyzer.OnTimeoutSet = *l.onTimeout, true
	}
	if l.endpoint != nil {
		p.Analyzer.Endpoint = *l.endpoint
	}
	if l.chatModel != nil {
		p.Analyzer.ChatModel = *l.chatModel
	}
	if l.modelAudit != nil {
		p.Analyzer.Audit = *l.modelAudit
	}
	if l.sequence != nil {
		p.Analyzer.Sequence = *l.sequence
	}
	return p
}

// IOUringErrno is what io_uring_* return when no rule names them and
// io_uring is not allowed knowingly: ENOSYS, so that programs fall back to
// ordinary system calls as on a kernel without io_uring.
const IOUringErrno Errno = 38

// implicitIOUringDeny makes io_uring "denied unless allowed knowingly":
// when profile.io_uring is false, the io_uring_* calls that no rule names
// and the profile default would let through (or notify) get a deny rule
// with Source "profile.io_uring". Calls a rule names are left to the
// io_uring check, which reports a rule that lets them through.
func (p *Profile) implicitIOUringDeny() {
	if p.IOUring || !(p.Default.runs() || p.Default == ActionNotify) {
		return
	}
	var names []string
	for _, s := range groupExpanded["@io-uring"] {
		if p.Policy(s).Source == "profile.default" && len(p.Policy(s).Conds) == 0 {
			names = append(names, s)
		}
	}
	if len(names) > 0 {
		p.Rules = append(p.Rules, Rule{Syscalls: names, Action: ActionErrno, Errno: IOUringErrno,
			Pos: p.DefaultPos, Source: "profile.io_uring", Profile: p.Name})
	}
}
