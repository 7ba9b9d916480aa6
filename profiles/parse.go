package profiles

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// layer is one profile document, or several merged along extends: every
// scalar is a pointer, nil when not set, so that a derived layer overrides
// only what it sets.
type layer struct {
	file    string // for positions of implicit values
	name    string
	nameSet bool

	description *string
	extends     []item
	def         *Action
	defPos      Pos
	defErrno    *Errno
	defErrnoPos Pos
	mode        *Mode
	ioUring     *bool

	rules []Rule          // effective rules, base first
	named map[string]bool // every syscall some rule of this layer names

	files   Files
	network Network
	exec    Exec

	supDefault    *Action
	supDefaultPos Pos
	supErrno      *Errno
	cacheSize     *int
	advisory      *[]string
	patterns      *bool

	model      *string
	modelPos   Pos
	budget     *time.Duration
	onTimeout  *Action
	endpoint   *string
	endPos     Pos
	chatModel  *string
	modelAudit *bool
	sequence   *string

	sources []string
}

// item is a string value with the place it was written.
type item struct {
	text string
	pos  Pos
	path string // "syscalls.allow[3]"
}

// docParser walks one decoded document against the schema.
type docParser struct {
	file string
	ix   *posIndex
	errs *errList
}

var topKeys = []string{"profile", "syscalls", "files", "network", "exec", "supervisor", "analyzer"}

var listActions = []struct {
	key    string
	action Action
}{
	{"allow", ActionAllow},
	{"deny", ActionErrno},
	{"kill", ActionKill},
	{"log", ActionLog},
	{"notify", ActionNotify},
}

// decodeDoc decodes one TOML document (a profile or an overlay) for a
// docParser; a syntax error is reported at its position and p is nil.
func decodeDoc(file string, data []byte, errs *errList) (map[string]any, *docParser) {
	var m map[string]any
	if _, err := toml.Decode(string(data), &m); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			errs.add(offsetPos(file, data, pe.Position.Start, pe.Position.Line), "", "invalid TOML: %s", pe.Message)
		} else {
			errs.add(Pos{File: file, Line: 1}, "", "invalid TOML: %v", err)
		}
		return nil, nil
	}
	return m, &docParser{file: file, ix: buildPosIndex(string(data)), errs: errs}
}

// parseDoc parses and checks one document; it does not follow extends.
func parseDoc(file string, data []byte, errs *errList) *layer {
	m, p := decodeDoc(file, data, errs)
	if p == nil {
		return nil
	}
	l := &layer{file: file, named: map[string]bool{}}
	p.checkKeys(m, "", topKeys)
	if t, ok := p.table(m, "", "profile"); ok {
		p.profile(l, t)
	}
	if t, ok := p.table(m, "", "syscalls"); ok {
		p.syscalls(l, t)
	}
	if t, ok := p.table(m, "", "files"); ok {
		p.files(l, t)
	}
	if t, ok := p.table(m, "", "network"); ok {
		p.network(l, t)
	}
	if t, ok := p.table(m, "", "exec"); ok {
		p.exec(l, t)
	}
	if t, ok := p.table(m, "", "supervisor"); ok {
		p.supervisor(l, t)
	}
	if t, ok := p.table(m, "", "analyzer"); ok {
		p.analyzer(l, t)
	}
	return l
}

// offsetPos turns the byte offset of a toml.ParseError into line:col
// (its Col counts from an earlier line after multi-line values).
func offsetPos(file string, data []byte, off, line int) Pos {
	if off < 0 || off > len(data) {
		return Pos{File: file, Line: line}
	}
	before := string(data[:off])
	nl := strings.LastIndexByte(before, '\n')
	return Pos{File: file, Line: 1 + strings.Count(before, "\n"), Col: 1 + utf8.RuneCountInString(before[nl+1:])}
}

// ---- generic typed access ----

func (p *docParser) keyPos(path string) Pos { return p.ix.key(p.file, path) }
func (p *docParser) valPos(path string) Pos { return p.ix.val(p.file, path) }

func (p *docParser) checkKeys(m map[string]any, at string, valid []string) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if slices.Contains(valid, k) {
			continue
		}
		where := "at the top level"
		if at != "" {
			where = "in [" + stripIndex(at) + "]"
		}
		p.errs.add(p.keyPos(joinPath(at, k)), "valid keys "+where+": "+strings.Join(valid, ", "),
			"unknown key %q%s", joinPath(at, k), didYouMeanSuffix(k, valid))
	}
}

// stripIndex turns "syscalls.rule[2]" into "syscalls.rule" for messages.
func stripIndex(path string) string {
	for {
		i := strings.IndexByte(path, '[')
		if i < 0 {
			return path
		}
		j := strings.IndexByte(path[i:], ']')
		if j < 0 {
			return path
		}
		path = path[:i] + path[i+j+1:]
	}
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	case time.Time:
		return "a date-time"
	}
	return fmt.Sprintf("%T", v)
}

func (p *docParser) wrongType(path string, want string, v any) {
	p.errs.add(p.valPos(path), "", "%s must be %s, not %s", path, want, typeName(v))
}

func (p *docParser) table(m map[string]any, at, key string) (map[string]any, bool) {
	v, ok := m[key]
	if !ok {
		return nil, false
	}
	t, ok := v.(map[string]any)
	if !ok {
		p.wrongType(joinPath(at, key), "a table", v)
	}
	return t, ok
}

func (p *docParser) str(m map[string]any, at, key string) (item, bool) {
	v, ok := m[key]
	if !ok {
		return item{}, false
	}
	path := joinPath(at, key)
	s, ok := v.(string)
	if !ok {
		p.wrongType(path, "a string", v)
		return item{}, false
	}
	return item{text: s, pos: p.valPos(path), path: path}, true
}

func (p *docParser) strs(m map[string]any, at, key string) ([]item, bool) {
	v, ok := m[key]
	if !ok {
		return nil, false
	}
	path := joinPath(at, key)
	arr, ok := v.([]any)
	if !ok {
		p.wrongType(path, "an array of strings", v)
		return nil, false
	}
	out := make([]item, 0, len(arr))
	for i, e := range arr {
		ep := indexPath(path, i)
		s, ok := e.(string)
		if !ok {
			p.errs.add(p.valPos(ep), "", "%s must be an array of strings, but element %d is %s", path, i, typeName(e))
			continue
		}
		out = append(out, item{text: s, pos: p.valPos(ep), path: ep})
	}
	return out, true
}

func (p *docParser) integer(m map[string]any, at, key string) (int64, Pos, bool) {
	v, ok := m[key]
	if !ok {
		return 0, Pos{}, false
	}
	path := joinPath(at, key)
	n, ok := v.(int64)
	if !ok {
		p.wrongType(path, "an integer", v)
		return 0, Pos{}, false
	}
	return n, p.valPos(path), true
}

func (p *docParser) boolean(m map[string]any, at, key string) (bool, bool) {
	v, ok := m[key]
	if !ok {
		return false, false
	}
	b, ok := v.(bool)
	if !ok {
		p.wrongType(joinPath(at, key), "a boolean (true or false)", v)
	}
	return b, ok
}

func (p *docParser) tables(m map[string]any, at, key string) ([]map[string]any, bool) {
	v, ok := m[key]
	if !ok {
		return nil, false
	}
	path := joinPath(at, key)
	switch a := v.(type) {
	case []map[string]any:
		return a, true
	case []any:
		out := make([]map[string]any, len(a))
		good := true
		for i, e := range a {
			t, ok := e.(map[string]any)
			if !ok {
				p.errs.add(p.valPos(indexPath(path, i)), "", "%s must be an array of tables, but element %d is %s", path, i, typeName(e))
				good = false
				continue
			}
			out[i] = t
		}
		return out, good
	}
	p.wrongType(path, "an array of tables", v)
	return nil, false
}

// text decodes a string value through an UnmarshalText method, adding the
// position to its error.
func (p *docParser) text(m map[string]any, at, key string, dst interface{ UnmarshalText([]byte) error }) (Pos, bool) {
	it, ok := p.str(m, at, key)
	if !ok {
		return Pos{}, false
	}
	if err := dst.UnmarshalText([]byte(it.text)); err != nil {
		p.errs.add(it.pos, "", "%s: %v", it.path, err)
		return Pos{}, false
	}
	return it.pos, true
}

// errno accepts a name ("EPERM") or a number, as a string or an integer.
func (p *docParser) errno(m map[string]any, at, key string) (Errno, Pos, bool) {
	path := joinPath(at, key)
	if n, ok := m[key].(int64); ok {
		var e Errno
		if n < 0 {
			n = math.MaxInt64
		}
		if err := e.setNumber(uint64(n)); err != nil {
			p.errs.add(p.valPos(path), "", "%s: %v", path, err)
			return 0, Pos{}, false
		}
		return e, p.valPos(path), true
	}
	var e Errno
	pos, ok := p.text(m, at, key, &e)
	return e, pos, ok
}

// action decodes an action and checks it is one of allowed.
func (p *docParser) action(m map[string]any, at, key string, allowed ...Action) (Action, Pos, bool) {
	var a Action
	pos, ok := p.text(m, at, key, &a)
	if !ok {
		return 0, Pos{}, false
	}
	if len(allowed) > 0 && !slices.Contains(allowed, a) {
		names := make([]string, len(allowed))
		for i, x := range allowed {
			names[i] = x.String()
		}
		p.errs.add(pos, "", "%s: action %q is not allowed here (want %s)", joinPath(at, key), m[key], strings.Join(names, ", "))
		return 0, Pos{}, false
	}
	return a, pos, true
}

// ---- [profile] ----

var profileKeys = []string{"name", "description", "extends", "default", "errno", "mode", "io_uring"}

func validName(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

func (p *docParser) profile(l *layer, t map[string]any) {
	const at = "profile"
	p.checkKeys(t, at, profileKeys)
	if it, ok := p.str(t, at, "name"); ok {
		if !validName(it.text) {
			p.errs.add(it.pos, "use letters, digits, '-', '_' and '.'", "profile.name %q is not a valid profile name", it.text)
		} else {
			l.name, l.nameSet = it.text, true
		}
	}
	if it, ok := p.str(t, at, "description"); ok {
		l.description = &it.text
	}
	if items, ok := p.strs(t, at, "extends"); ok {
		for _, it := range items {
			if it.text == "" {
				p.errs.add(it.pos, "", "empty profile name in profile.extends")
				continue
			}
			l.extends = append(l.extends, it)
		}
	}
	if a, pos, ok := p.action(t, at, "default"); ok {
		l.def, l.defPos = &a, pos
	}
	if e, pos, ok := p.errno(t, at, "errno"); ok {
		l.defErrno, l.defErrnoPos = &e, pos
		if l.def != nil && *l.def != ActionErrno {
			p.errs.add(pos, "remove errno, or set default = \"deny\"", "profile.errno is only used with default = \"deny\", not %q", l.def.String())
		}
	}
	var mode Mode
	if _, ok := p.text(t, at, "mode", &mode); ok {
		l.mode = &mode
	}
	if b, ok := p.boolean(t, at, "io_uring"); ok {
		l.ioUring = &b
	}
}

// ---- [syscalls] ----

var syscallsKeys = []string{"allow", "deny", "errno", "kill", "log", "notify", "rule"}
var ruleKeys = []string{"names", "action", "errno", "args"}
var argKeys = []string{"index", "op", "value", "mask"}

// entry is one name or @group written in a syscalls list.
type entry struct {
	item
	list     string
	action   Action
	errno    Errno
	members  []string
	explicit bool // a plain name, not a group
}

// resolveName expands one name or @group for the list at path; ok is false
// after an error.
func (p *docParser) resolveName(it item, where string) ([]string, bool) {
	name := it.text
	if strings.HasPrefix(name, "@") {
		if m, ok := groupExpanded[name]; ok {
			return m, true
		}
		p.errs.add(it.pos, "`archangel syscalls --group` lists the groups and their members",
			"unknown syscall group %q in %s%s", name, where, didYouMeanSuffix(name, groupSorted))
		return nil, false
	}
	if _, ok := syscallByName[name]; ok {
		return []string{name}, true
	}
	if knownAnyArch[name] {
		p.errs.add(it.pos, "`archangel syscalls` lists valid names",
			"syscall %q in %s does not exist on x86-64 (it is another architecture's)", name, where)
		return nil, false
	}
	p.errs.add(it.pos, "`archangel syscalls` lists valid names",
		"unknown syscall %q in %s%s", name, where, didYouMeanSuffix(name, syscallSorted))
	return nil, false
}

func (p *docParser) syscalls(l *layer, t map[string]any) {
	const at = "syscalls"
	p.checkKeys(t, at, syscallsKeys)
	denyErrno := Errno(1) // EPERM
	if e, _, ok := p.errno(t, at, "errno"); ok {
		denyErrno = e
	}
	var entries []*entry
	for _, la := range listActions {
		items, _ := p.strs(t, at, la.key)
		for _, it := range items {
			members, ok := p.resolveName(it, at+"."+la.key)
			if !ok {
				continue
			}
			e := &entry{item: it, list: at + "." + la.key, action: la.action, members: members,
				explicit: !strings.HasPrefix(it.text, "@")}
			if la.action == ActionErrno {
				e.errno = denyErrno
			}
			entries = append(entries, e)
		}
	}

	// Decide every syscall's unconditional action: an explicit name beats
	// groups; between groups the stricter action wins; the same name in two
	// lists is an error.
	winner := map[string]*entry{}
	explicitIn := map[string]*entry{}
	reported := map[[2]string]bool{}
	for _, e := range entries {
		for _, s := range e.members {
			l.named[s] = true
			if e.explicit {
				if prev, ok := explicitIn[s]; ok {
					if prev.list != e.list {
						key := [2]string{s, prev.list + e.list}
						if !reported[key] {
							reported[key] = true
							p.errs.add(e.pos, "keep the name in one list only",
								"conflicting rules for %q: %s in %s (%s) and %s in %s", s,
								prev.action.verb(), prev.list, prev.pos, e.action.verb(), e.list)
						}
					}
					continue
				}
				explicitIn[s] = e
				winner[s] = e
				continue
			}
			if _, ok := explicitIn[s]; ok {
				continue
			}
			if prev, ok := winner[s]; !ok || e.action.strictness() > prev.action.strictness() {
				winner[s] = e
			}
		}
	}
	for _, e := range entries {
		var own []string
		for _, s := range e.members {
			if winner[s] == e && !slices.Contains(own, s) {
				own = append(own, s)
			}
		}
		if len(own) == 0 {
			continue
		}
		l.rules = append(l.rules, Rule{Syscalls: own, Action: e.action, Errno: e.errno, Pos: e.pos, Source: e.list, Entry: e.text})
	}

	rules, _ := p.tables(t, at, "rule")
	var conds []Rule
	for i, rt := range rules {
		if rt == nil {
			continue
		}
		if r, ok := p.condRule(rt, indexPath(at+".rule", i)); ok {
			for _, s := range r.Syscalls {
				l.named[s] = true
			}
			conds = append(conds, r)
		}
	}
	p.checkOverlap(conds)
	l.rules = append(l.rules, conds...)
}

func (p *docParser) condRule(t map[string]any, at string) (Rule, bool) {
	p.checkKeys(t, at, ruleKeys)
	r := Rule{Pos: p.keyPos(at), Source: at}
	good := true
	names, ok := p.strs(t, at, "names")
	if !ok || len(names) == 0 {
		p.errs.add(p.keyPos(at), "", "%s has no names (want names = [\"syscall\", \"@group\", ...])", at)
		good = false
	}
	for _, it := range names {
		m, ok := p.resolveName(it, at+".names")
		if !ok {
			good = false
			continue
		}
		for _, s := range m {
			if !slices.Contains(r.Syscalls, s) {
				r.Syscalls = append(r.Syscalls, s)
			}
		}
	}
	if _, ok := t["action"]; !ok {
		p.errs.add(p.keyPos(at), "", "%s has no action (want allow, deny, kill, log or notify)", at)
		good = false
	} else if a, _, ok := p.action(t, at, "action"); ok {
		r.Action = a
		if r.Action == ActionErrno {
			r.Errno = 1 // EPERM
		}
	} else {
		good = false
	}
	if _, present := t["errno"]; present {
		if e, pos, ok := p.errno(t, at, "errno"); ok {
			if r.Action != ActionErrno && r.Action != ActionUnset {
				p.errs.add(pos, "remove errno, or set action = \"deny\"", "%s.errno is only used with action = \"deny\", not %q", at, r.Action.String())
				good = false
			}
			r.Errno = e
		} else {
			good = false
		}
	}
	args, ok := p.tables(t, at, "args")
	if !ok || len(args) == 0 {
		if _, present := t["args"]; !present || ok {
			p.errs.add(p.keyPos(at), "for unconditional rules use the syscalls.allow, deny, kill, log or notify lists",
				"%s has no args: [[syscalls.rule]] is for rules with argument conditions", at)
		}
		return r, false
	}
	for i, a := range args {
		if a == nil {
			good = false
			continue
		}
		c, ok := p.argCond(a, indexPath(at+".args", i))
		if !ok {
			good = false
			continue
		}
		r.Args = append(r.Args, c)
	}
	return r, good
}

func (p *docParser) argCond(t map[string]any, at string) (ArgCond, bool) {
	p.checkKeys(t, at, argKeys)
	var c ArgCond
	good := true
	if n, pos, ok := p.integer(t, at, "index"); !ok {
		if _, present := t["index"]; !present {
			p.errs.add(p.valPos(at), "", "%s has no index (want 0..5)", at)
		}
		good = false
	} else if n < 0 || n > 5 {
		p.errs.add(pos, "system calls have six arguments, numbered 0 to 5", "%s.index %d out of range (want 0..5)", at, n)
		good = false
	} else {
		c.Index = int(n)
	}
	c.Op = OpEq
	if _, present := t["op"]; present {
		if _, ok := p.text(t, at, "op", &c.Op); !ok {
			good = false
		}
	}
	if v, ok := p.argValue(t, at, "value"); ok {
		c.Value = v
	} else {
		if _, present := t["value"]; !present {
			p.errs.add(p.valPos(at), "", "%s has no value", at)
		}
		good = false
	}
	mask, hasMask := p.argValue(t, at, "mask")
	switch {
	case c.Op == OpMaskedEq && !hasMask:
		if _, present := t["mask"]; !present {
			p.errs.add(p.valPos(at), "add mask = 0x...; the rule compares arg & mask with value", "%s: op masked_eq needs a mask", at)
		}
		good = false
	case c.Op != OpMaskedEq && hasMask:
		p.errs.add(p.keyPos(at+".mask"), "use op = \"masked_eq\", or remove mask", "%s.mask is only used with op = \"masked_eq\"", at)
		good = false
	case hasMask:
		c.Mask = mask
		if c.Value&^mask != 0 && good {
			p.errs.add(p.valPos(at+".value"), "clear the value bits outside the mask",
				"%s: value %#x has bits outside mask %#x, so the rule can never match", at, c.Value, mask)
			good = false
		}
	}
	return c, good
}

// argValue accepts an integer (negative values are taken as 64-bit two's
// complement, as the kernel sees a sign-extended register) or a string
// holding an unsigned number ("0xffffffffffffffff", beyond TOML's int64).
func (p *docParser) argValue(t map[string]any, at, key string) (uint64, bool) {
	v, present := t[key]
	if !present {
		return 0, false
	}
	path := joinPath(at, key)
	switch x := v.(type) {
	case int64:
		return uint64(x), true
	case string:
		n, err := strconv.ParseUint(strings.ReplaceAll(x, "_", ""), 0, 64)
		if err != nil {
			p.errs.add(p.valPos(path), "", "%s: %q is not an unsigned 64-bit number", path, x)
			return 0, false
		}
		return n, true
	}
	p.wrongType(path, "an integer", v)
	return 0, false
}

// checkOverlap reports conditional rules with different verdicts that may
// match the same call: rules are provably disjoint when they test one
// argument for equality with different values.
func (p *docParser) checkOverlap(conds []Rule) {
	for j := range conds {
		for i := range j {
			a, b := conds[i], conds[j]
			if a.Action == b.Action && a.Errno == b.Errno {
				continue
			}
			shared := ""
			for _, s := range b.Syscalls {
				if slices.Contains(a.Syscalls, s) {
					shared = s
					break
				}
			}
			if shared == "" || disjoint(a.Args, b.Args) {
				continue
			}
			p.errs.add(b.Pos, "make the rules disjoint (one op = \"eq\" test on the same argument with different values each), or give them the same action",
				"overlapping argument rules with different actions for %q: %s (%s) %s, %s %s",
				shared, a.Source, a.Pos, verdictText(a), b.Source, verdictText(b))
		}
	}
}

func verdictText(r Rule) string {
	if r.Action == ActionErrno {
		return "denies with " + r.Errno.String()
	}
	return map[Action]string{ActionAllow: "allows", ActionKill: "kills", ActionLog: "logs", ActionNotify: "notifies"}[r.Action]
}

// disjoint: some argument must equal one value in a and another in b
// (learned rules, ApplyOverlay, test every scalar argument for equality).
func disjoint(a, b []ArgCond) bool {
	for _, x := range a {
		for _, y := range b {
			if x.Op == OpEq && y.Op == OpEq && x.Index == y.Index && x.Value != y.Value {
				return true
			}
		}
	}
	return false
}

// ---- [files], [exec] ----

var filesKeys = []string{"read", "write", "exec", "deny"}

func (p *docParser) files(l *layer, t map[string]any) {
	p.checkKeys(t, "files", filesKeys)
	for _, k := range filesKeys {
		items, _ := p.strs(t, "files", k)
		for _, it := range items {
			if err := checkGlob(it.text); err != nil {
				p.errs.add(it.pos, globHint, "bad path glob %q in %s: %v", it.text, "files."+k, err)
				continue
			}
			pat := Pattern{Text: it.text, Pos: it.pos}
			switch k {
			case "read":
				l.files.Read = append(l.files.Read, pat)
			case "write":
				l.files.Write = append(l.files.Write, pat)
			case "exec":
				l.files.Exec = append(l.files.Exec, pat)
			case "deny":
				l.files.Deny = append(l.files.Deny, pat)
			}
		}
	}
}

const globHint = "globs are absolute or start with ${CWD}, ${HOME} or ${TMPDIR}; * ? [a-z] match within a path element, ** matches any number of elements"

// PathVariables are the variables a path glob may start with; the
// supervisor expands them at launch.
var PathVariables = []string{"${CWD}", "${HOME}", "${TMPDIR}"}

// checkGlob checks a [files]/[exec] path glob: path.Match syntax per
// element, "**" only as a whole element, absolute or rooted at a variable.
func checkGlob(g string) error {
	rest := g
	switch {
	case strings.HasPrefix(g, "/"):
	case strings.HasPrefix(g, "${"):
		end := strings.IndexByte(g, '}')
		if end < 0 {
			return errors.New("unterminated ${")
		}
		v := g[:end+1]
		if !slices.Contains(PathVariables, v) {
			return fmt.Errorf("unknown variable %s (want %s)", v, strings.Join(PathVariables, ", "))
		}
		rest = g[end+1:]
		if rest != "" && rest[0] != '/' {
			return fmt.Errorf("%s must be followed by / or end the glob", v)
		}
	default:
		return errors.New("not an absolute path")
	}
	if strings.Contains(rest, "${") {
		return errors.New("variables may only start a glob")
	}
	for _, el := range strings.Split(rest, "/") {
		if el == "**" {
			continue
		}
		if strings.Contains(el, "**") {
			return fmt.Errorf("** must be a whole path element, not part of %q", el)
		}
		if _, err := path.Match(el, ""); err != nil {
			return fmt.Errorf("syntax error in element %q", el)
		}
	}
	return nil
}

var execKeys = []string{"rule"}
var execRuleKeys = []string{"path", "argv", "parent", "action"}

func (p *docParser) exec(l *layer, t map[string]any) {
	p.checkKeys(t, "exec", execKeys)
	rules, _ := p.tables(t, "exec", "rule")
	for i, rt := range rules {
		if rt == nil {
			continue
		}
		at := indexPath("exec.rule", i)
		p.checkKeys(rt, at, execRuleKeys)
		r := ExecRule{Pos: p.keyPos(at)}
		good := true
		if it, ok := p.str(rt, at, "path"); ok {
			if err := checkGlob(it.text); err != nil {
				p.errs.add(it.pos, globHint, "bad path glob %q in %s.path: %v", it.text, at, err)
				good = false
			}
			r.Path = Pattern{Text: it.text, Pos: it.pos}
		} else {
			if _, present := rt["path"]; !present {
				p.errs.add(r.Pos, "", "%s has no path", at)
			}
			good = false
		}
		for _, k := range []string{"argv", "parent"} {
			items, _ := p.strs(rt, at, k)
			for _, it := range items {
				if _, err := path.Match(it.text, ""); err != nil {
					p.errs.add(it.pos, "", "bad glob %q in %s.%s: syntax error", it.text, at, k)
					good = false
					continue
				}
				if k == "argv" {
					r.Argv = append(r.Argv, it.text)
				} else {
					r.Parent = append(r.Parent, it.text)
				}
			}
		}
		if _, present := rt["action"]; !present {
			p.errs.add(r.Pos, "", "%s has no action (want allow, deny, kill or log)", at)
			good = false
		} else if a, _, ok := p.action(rt, at, "action", ActionAllow, ActionErrno, ActionKill, ActionLog); ok {
			r.Action = a
		} else {
			good = false
		}
		if good {
			l.exec.Rules = append(l.exec.Rules, r)
		}
	}
}

// ---- [network] ----

var networkKeys = []string{"connect", "bind", "deny"}

func (p *docParser) network(l *layer, t map[string]any) {
	p.checkKeys(t, "network", networkKeys)
	for _, k := range networkKeys {
		items, _ := p.strs(t, "network", k)
		for _, it := range items {
			ep, err := ParseEndpoint(it.text)
			if err != nil {
				p.errs.add(it.pos, endpointHint, "bad endpoint %q in network.%s: %v", it.text, k, err)
				continue
			}
			ep.Pos = it.pos
			switch k {
			case "connect":
				l.network.Connect = append(l.network.Connect, ep)
			case "bind":
				l.network.Bind = append(l.network.Bind, ep)
			case "deny":
				l.network.Deny = append(l.network.Deny, ep)
			}
		}
	}
}

const endpointHint = `write "ADDR[/BITS]:PORTS", "[IPV6[/BITS]]:PORTS", "HOST:PORTS", "*", "unix:/path" or "unix:@abstract"; PORTS is N, N-M or *`

// ParseEndpoint parses one [network] entry: "*", "unix:/path",
// "unix:@abstract", or HOST:PORTS where HOST is an IPv4 address or CIDR, a
// bracketed IPv6 address or CIDR, a DNS name or "*", and PORTS is N, N-M
// or "*". Pos is left zero.
func ParseEndpoint(s string) (Endpoint, error) {
	ep := Endpoint{Text: s}
	if s == "*" {
		ep.Any, ep.PortLo, ep.PortHi = true, 0, 65535
		return ep, nil
	}
	if rest, ok := strings.CutPrefix(s, "unix:"); ok {
		switch {
		case rest == "" || rest == "@":
			return ep, errors.New("empty unix socket path")
		case rest[0] != '/' && rest[0] != '@':
			return ep, errors.New("unix socket path must be absolute (or @name for the abstract namespace)")
		case len(rest) > 107:
			return ep, errors.New("unix socket path longer than 107 bytes")
		}
		if rest[0] == '/' {
			if _, err := path.Match(rest, ""); err != nil {
				return ep, errors.New("syntax error in unix socket path glob")
			}
		}
		ep.Unix = rest
		return ep, nil
	}
	var host, ports string
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return ep, errors.New("missing ] after IPv6 address")
		}
		host = s[1:end]
		after := s[end+1:]
		if strings.HasPrefix(after, "/") { // "[fd00::]/8:443"
			colon := strings.IndexByte(after, ':')
			if colon < 0 {
				return ep, errors.New("missing :PORTS (use :* for any port)")
			}
			host += after[:colon]
			after = after[colon:]
		}
		if !strings.HasPrefix(after, ":") {
			return ep, errors.New("missing :PORTS after ] (use :* for any port)")
		}
		ports = after[1:]
		if !strings.Contains(host, ":") {
			return ep, errors.New("brackets are for IPv6 addresses")
		}
	} else {
		i := strings.LastIndexByte(s, ':')
		if i < 0 {
			return ep, errors.New("missing :PORTS (use :* for any port)")
		}
		host, ports = s[:i], s[i+1:]
		if strings.Contains(host, ":") {
			return ep, errors.New("IPv6 addresses must be in brackets: [::1]:443")
		}
	}
	lo, hi, err := parsePorts(ports)
	if err != nil {
		return ep, err
	}
	ep.PortLo, ep.PortHi = lo, hi
	switch {
	case host == "*":
		ep.Any = true
	case host == "":
		return ep, errors.New("empty host")
	case strings.Contains(host, "/"):
		pfx, err := netip.ParsePrefix(host)
		if err != nil {
			return ep, fmt.Errorf("bad CIDR %q", host)
		}
		if pfx != pfx.Masked() {
			return ep, fmt.Errorf("CIDR %s has host bits set (did you mean %s?)", host, pfx.Masked())
		}
		ep.Prefix = pfx
	default:
		if addr, err := netip.ParseAddr(host); err == nil {
			if addr.Zone() != "" {
				return ep, errors.New("IPv6 zones are not supported")
			}
			ep.Prefix = netip.PrefixFrom(addr, addr.BitLen())
		} else if looksNumeric(host) {
			return ep, fmt.Errorf("bad IP address %q", host)
		} else if !validHostname(host) {
			return ep, fmt.Errorf("bad host name %q", host)
		} else {
			ep.Host = strings.ToLower(strings.TrimSuffix(host, "."))
		}
	}
	return ep, nil
}

func parsePorts(s string) (uint16, uint16, error) {
	if s == "*" {
		return 0, 65535, nil
	}
	if s == "" {
		return 0, 0, errors.New("missing port (use :* for any port)")
	}
	loS, hiS, isRange := strings.Cut(s, "-")
	lo, err := strconv.ParseUint(loS, 10, 16)
	if err != nil {
		return 0, 0, fmt.Errorf("bad port %q (want 0..65535, N-M or *)", loS)
	}
	hi := lo
	if isRange {
		if hi, err = strconv.ParseUint(hiS, 10, 16); err != nil {
			return 0, 0, fmt.Errorf("bad port %q (want 0..65535, N-M or *)", hiS)
		}
		if hi < lo {
			return 0, 0, fmt.Errorf("port range %s is empty", s)
		}
	}
	return uint16(lo), uint16(hi), nil
}

func looksNumeric(h string) bool {
	return strings.Trim(h, "0123456789.") == ""
}

func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// ---- [supervisor], [analyzer] ----

var supervisorKeys = []string{"default", "errno", "cache_size", "advisory", "patterns"}

// AdvisoryKinds are the call kinds a profile may accept advisory (CONTINUE)
// allows for in [supervisor] advisory: calls whose allow by path the
// supervisor cannot carry out itself, so that the kernel re-reads the
// path after the check.
var AdvisoryKinds = []string{"exec", "stat", "create", "delete", "rename", "attr", "chdir", "connect", "bind"}

func (p *docParser) supervisor(l *layer, t map[string]any) {
	const at = "supervisor"
	p.checkKeys(t, at, supervisorKeys)
	if a, pos, ok := p.action(t, at, "default", ActionAllow, ActionErrno, ActionKill); ok {
		l.supDefault, l.supDefaultPos = &a, pos
	}
	if e, _, ok := p.errno(t, at, "errno"); ok {
		l.supErrno = &e
	}
	if b, ok := p.boolean(t, at, "patterns"); ok {
		l.patterns = &b
	}
	if items, ok := p.strs(t, at, "advisory"); ok {
		kinds := []string{}
		for _, it := range items {
			if !slices.Contains(AdvisoryKinds, it.text) {
				p.errs.add(it.pos, "valid kinds: "+strings.Join(AdvisoryKinds, ", ")+" (open is always carried out race-free)",
					"supervisor.advisory: unknown call kind %q%s", it.text, didYouMeanSuffix(it.text, AdvisoryKinds))
				continue
			}
			kinds = append(kinds, it.text)
		}
		l.advisory = &kinds
	}
	if n, pos, ok := p.integer(t, at, "cache_size"); ok {
		if n < 0 || n > 1<<24 {
			p.errs.add(pos, "0 selects the built-in size", "supervisor.cache_size %d out of range (want 0..%d)", n, 1<<24)
		} else {
			c := int(n)
			l.cacheSize = &c
		}
	}
}

var analyzerKeys = []string{"model", "mode", "budget", "on_timeout", "endpoint", "chat_model", "sequence"}

// AnalyzerModels are the accepted [analyzer] model values.
var AnalyzerModels = []string{"builtin", "none", "http", "chat"}

func (p *docParser) analyzer(l *layer, t map[string]any) {
	const at = "analyzer"
	p.checkKeys(t, at, analyzerKeys)
	if it, ok := p.str(t, at, "model"); ok {
		if !slices.Contains(AnalyzerModels, it.text) {
			p.errs.add(it.pos, "", "analyzer.model: unknown model %q (want builtin, none, http or chat)%s", it.text, didYouMeanSuffix(it.text, AnalyzerModels))
		} else {
			l.model, l.modelPos = &it.text, it.pos
		}
	}
	if it, ok := p.str(t, at, "budget"); ok {
		d, err := time.ParseDuration(it.text)
		switch {
		case err != nil:
			p.errs.add(it.pos, "write a Go duration such as \"100us\", \"2ms\" or \"1s\"", "analyzer.budget: bad duration %q", it.text)
		case d <= 0:
			p.errs.add(it.pos, "", "analyzer.budget must be positive, not %q", it.text)
		default:
			l.budget = &d
		}
	}
	if a, _, ok := p.action(t, at, "on_timeout", ActionAllow, ActionErrno, ActionKill); ok {
		l.onTimeout = &a
	}
	if it, ok := p.str(t, at, "endpoint"); ok {
		if it.text != "" {
			if err := checkLoopbackURL(it.text); err != nil {
				p.errs.add(it.pos, "the analyzer endpoint must be on this machine, e.g. \"http://127.0.0.1:8900/v1/score\"", "analyzer.endpoint %q: %v", it.text, err)
				return
			}
		}
		l.endpoint, l.endPos = &it.text, it.pos
	}
	if it, ok := p.str(t, at, "chat_model"); ok {
		l.chatModel = &it.text
	}
	if it, ok := p.str(t, at, "sequence"); ok {
		switch it.text {
		case "report", "deny", "kill":
			l.sequence = &it.text
		default:
			p.errs.add(it.pos, "report only records an anomalous thread; deny refuses its notified calls; kill ends its process", "analyzer.sequence: unknown response %q (want report, deny or kill)", it.text)
		}
	}
	if it, ok := p.str(t, at, "mode"); ok {
		switch it.text {
		case "enforce", "audit":
			audit := it.text == "audit"
			l.modelAudit = &audit
		default:
			p.errs.add(it.pos, "enforce carries the model's verdicts out; audit only records them", "analyzer.mode: unknown mode %q (want enforce or audit)", it.text)
		}
	}
}

func checkLoopbackURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("scheme must be http or https")
	}
	h := u.Hostname()
	if h == "localhost" {
		return nil
	}
	addr, err := netip.ParseAddr(h)
	if err != nil || !addr.IsLoopback() {
		return fmt.Errorf("host %q is not a loopback address", h)
	}
	return nil
}
