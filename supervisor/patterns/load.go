package patterns

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/BurntSushi/toml"

	"github.com/archangel-sandbox/archangel/analyzer"
	"github.com/archangel-sandbox/archangel/profiles"
	"github.com/archangel-sandbox/archangel/supervisor/rules"
)

var (
	patternKeys = []string{"name", "description", "risk", "verdict", "scope", "window", "step"}
	stepKeys    = []string{"name", "syscalls", "kinds", "paths", "path", "path_pid", "exe", "not_exe", "argv",
		"access", "addr", "denied", "flags", "fd", "args", "count", "capture", "from", "same_process"}
	argKeys   = []string{"index", "op", "value", "mask"}
	validName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
)

// maxWindow bounds a pattern's window (state is kept at most this long).
const maxWindow = 24 * time.Hour

type loader struct {
	file     string
	ix       map[string]profiles.Pos
	env      Env
	dropHome bool // Builtin without HOME: leave ${HOME} globs out
	errs     []*profiles.Error
}

func (l *loader) errAt(path, hint, format string, args ...any) {
	l.errs = append(l.errs, &profiles.Error{Pos: lookupPos(l.ix, l.file, path), Msg: fmt.Sprintf(format, args...), Hint: hint})
}

func (l *loader) err() error {
	if len(l.errs) == 0 {
		return nil
	}
	slices.SortStableFunc(l.errs, func(a, b *profiles.Error) int {
		return cmp.Or(cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Col, b.Pos.Col))
	})
	errs := make([]error, len(l.errs))
	for i, e := range l.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

func load(file string, data []byte, env Env, dropHome bool) (*Engine, error) {
	l := &loader{file: file, env: env, dropHome: dropHome}
	if !utf8.Valid(data) {
		return nil, &profiles.Error{Pos: profiles.Pos{File: file, Line: 1}, Msg: "invalid TOML: not UTF-8"}
	}
	var m map[string]any
	if _, err := toml.Decode(string(data), &m); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &profiles.Error{Pos: offsetPos(file, data, pe.Position.Start, pe.Position.Line), Msg: "invalid TOML: " + pe.Message}
		}
		return nil, &profiles.Error{Pos: profiles.Pos{File: file, Line: 1}, Msg: "invalid TOML: " + err.Error()}
	}
	l.ix = buildPosIndex(string(data))
	e := &Engine{byName: map[string][]cand{}, procs: map[int]*proc{}, lim: Limits{}.withDefaults()}
	l.checkKeys(m, "", []string{"pattern"})
	tabs, _ := l.tables(m, "", "pattern")
	seen := map[string]string{}
	for i, t := range tabs {
		at := "pattern[" + strconv.Itoa(i) + "]"
		p := l.pattern(t, at)
		if p == nil {
			continue
		}
		if prev, dup := seen[p.name]; dup {
			l.errAt(at+".name", "", "pattern %q is defined twice (first at %s)", p.name, prev)
			continue
		}
		seen[p.name] = p.pos.String()
		p.index = len(e.patterns)
		e.patterns = append(e.patterns, p)
	}
	if err := l.err(); err != nil {
		return nil, err
	}
	e.index()
	return e, nil
}

// index builds the per-call candidate lists, pattern order then step order.
func (e *Engine) index() {
	for _, p := range e.patterns {
		for j, s := range p.steps {
			c := cand{p, j}
			switch {
			case len(s.syscalls) > 0:
				for _, n := range s.syscalls {
					e.byName[n] = append(e.byName[n], c)
				}
			case s.kinds != 0:
				for k := range e.byKind {
					if s.kinds&(1<<k) != 0 {
						e.byKind[k] = append(e.byKind[k], c)
					}
				}
			default:
				e.anyCall = append(e.anyCall, c)
			}
		}
	}
}

func offsetPos(file string, data []byte, off, line int) profiles.Pos {
	if off < 0 || off > len(data) {
		return profiles.Pos{File: file, Line: line}
	}
	before := string(data[:off])
	nl := strings.LastIndexByte(before, '\n')
	return profiles.Pos{File: file, Line: 1 + strings.Count(before, "\n"), Col: 1 + utf8.RuneCountInString(before[nl+1:])}
}

// ---- typed access ----

func (l *loader) checkKeys(m map[string]any, at string, valid []string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sortStrings(keys)
	for _, k := range keys {
		if !slices.Contains(valid, k) {
			l.errAt(join(at, k), "valid keys here: "+strings.Join(valid, ", "), "unknown key %q", join(at, k))
		}
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
		return "a date"
	}
	return fmt.Sprintf("%T", v)
}

func (l *loader) wrongType(path, want string, v any) {
	l.errAt(path, "", "%s must be %s, not %s", path, want, typeName(v))
}

func (l *loader) str(m map[string]any, at, key string) (string, bool) {
	v, ok := m[key]
	if !ok {
		return "", false
	}
	s, ok := v.(string)
	if !ok {
		l.wrongType(join(at, key), "a string", v)
		return "", false
	}
	return s, true
}

// strs accepts a string or an array of strings.
func (l *loader) strs(m map[string]any, at, key string) ([]string, bool) {
	v, ok := m[key]
	if !ok {
		return nil, false
	}
	p := join(at, key)
	switch v := v.(type) {
	case string:
		return []string{v}, true
	case []any:
		out := make([]string, 0, len(v))
		good := true
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				l.wrongType(p+"["+strconv.Itoa(i)+"]", "a string", e)
				good = false
				continue
			}
			out = append(out, s)
		}
		return out, good
	}
	l.wrongType(p, "an array of strings", v)
	return nil, false
}

func (l *loader) integer(m map[string]any, at, key string) (int64, bool) {
	v, ok := m[key]
	if !ok {
		return 0, false
	}
	n, ok := v.(int64)
	if !ok {
		l.wrongType(join(at, key), "an integer", v)
		return 0, false
	}
	return n, true
}

func (l *loader) boolean(m map[string]any, at, key string) (bool, bool) {
	v, ok := m[key]
	if !ok {
		return false, false
	}
	b, ok := v.(bool)
	if !ok {
		l.wrongType(join(at, key), "a boolean", v)
		return false, false
	}
	return b, true
}

func (l *loader) tables(m map[string]any, at, key string) ([]map[string]any, bool) {
	v, ok := m[key]
	if !ok {
		return nil, false
	}
	p := join(at, key)
	switch v := v.(type) {
	case []map[string]any:
		return v, true
	case map[string]any:
		l.errAt(p, "write [["+p+"]] (an array of tables), not ["+p+"]", "%s must be an array of tables", p)
		return nil, false
	case []any:
		out := make([]map[string]any, 0, len(v))
		for i, e := range v {
			t, ok := e.(map[string]any)
			if !ok {
				l.wrongType(p+"["+strconv.Itoa(i)+"]", "a table", e)
				return nil, false
			}
			out = append(out, t)
		}
		return out, true
	}
	l.wrongType(p, "an array of tables", v)
	return nil, false
}

// ---- patterns ----

func (l *loader) pattern(t map[string]any, at string) *pattern {
	n0 := len(l.errs)
	l.checkKeys(t, at, patternKeys)
	p := &pattern{pos: lookupPos(l.ix, l.file, at), scope: ScopeProcess}
	if name, ok := l.str(t, at, "name"); !ok {
		if _, present := t["name"]; !present {
			l.errAt(at, `add name = "my-pattern"`, "pattern has no name")
		}
	} else if !validName.MatchString(name) {
		l.errAt(at+".name", "use lower-case letters, digits, '-' and '_'", "invalid pattern name %q", name)
	} else {
		p.name = name
	}
	p.desc, _ = l.str(t, at, "description")
	if v, ok := t["risk"]; !ok {
		l.errAt(at, "add risk = 0.5 (0 to 1)", "pattern %q has no risk", p.name)
	} else {
		switch r := v.(type) {
		case float64:
			p.risk = r
		case int64:
			p.risk = float64(r)
		default:
			l.wrongType(at+".risk", "a number from 0 to 1", v)
			p.risk = 0
		}
		if math.IsNaN(p.risk) || p.risk < 0 || p.risk > 1 {
			l.errAt(at+".risk", "", "risk %v is outside 0..1", p.risk)
		}
	}
	if s, ok := l.str(t, at, "verdict"); !ok {
		if _, present := t["verdict"]; !present {
			l.errAt(at, `add verdict = "deny", "kill" or "log"`, "pattern %q has no verdict", p.name)
		}
	} else {
		var a profiles.Action
		if err := a.UnmarshalText([]byte(s)); err != nil || (a != profiles.ActionErrno && a != profiles.ActionKill && a != profiles.ActionLog) {
			l.errAt(at+".verdict", "", "verdict %q: want deny, kill or log", s)
		}
		p.verdict = a
	}
	if s, ok := l.str(t, at, "scope"); ok {
		if err := p.scope.UnmarshalText([]byte(s)); err != nil {
			l.errAt(at+".scope", "", "%v", err)
		}
	}
	if s, ok := l.str(t, at, "window"); ok {
		d, err := time.ParseDuration(s)
		switch {
		case err != nil:
			l.errAt(at+".window", `write a Go duration: "30s", "10m", "1h30m"`, "bad window %q", s)
		case d <= 0 || d > maxWindow:
			l.errAt(at+".window", "", "window %s is outside (0, %s]", d, maxWindow)
		default:
			p.window = int64(d)
		}
	}
	steps, ok := l.tables(t, at, "step")
	if !ok {
		if _, present := t["step"]; !present {
			l.errAt(at, "add at least one [[pattern.step]]", "pattern %q has no steps", p.name)
		}
		return nil
	}
	if len(steps) == 0 {
		l.errAt(at+".step", "", "pattern %q has no steps", p.name)
	}
	for j, st := range steps {
		if s := l.step(p, st, at+".step["+strconv.Itoa(j)+"]", j); s != nil {
			p.steps = append(p.steps, s)
		}
	}
	if p.window == 0 && (len(steps) > 1 || slices.ContainsFunc(p.steps, func(s *step) bool { return s.count > 1 })) {
		if _, present := t["window"]; !present {
			l.errAt(at, `add window = "60s": the longest time from the first event to the last`, "pattern %q has several events but no window", p.name)
		}
	}
	if len(l.errs) > n0 {
		return nil
	}
	return p
}

func kindByName(s string) (analyzer.Kind, bool) {
	for k := analyzer.Kind(0); k < 32; k++ {
		n := k.String()
		if n == "unknown" {
			break
		}
		if n == s {
			return k, true
		}
	}
	return 0, false
}

func kindNames() string {
	var out []string
	for k := analyzer.Kind(0); k.String() != "unknown"; k++ {
		out = append(out, k.String())
	}
	return strings.Join(out, ", ")
}

// ref parses "$name" into a capture index bound by an earlier step.
func (l *loader) ref(p *pattern, path, s string, wantPath bool) (int, bool) {
	name, ok := strings.CutPrefix(s, "$")
	if !ok {
		return -1, false
	}
	i := slices.Index(p.caps, name)
	if i < 0 {
		l.errAt(path, "capture it in an earlier step: capture = \""+name+"\", from = \"arg0\"", "unknown capture %q", s)
		return -1, true
	}
	if p.capPath[i] != wantPath {
		what := map[bool]string{true: "a path", false: "a number"}
		l.errAt(path, "", "capture %q holds %s, not %s", s, what[p.capPath[i]], what[wantPath])
		return -1, true
	}
	return i, true
}

func (l *loader) globs(t map[string]any, at, key string) []*rules.Glob {
	list, ok := l.strs(t, at, key)
	if !ok {
		return nil
	}
	var out []*rules.Glob
	for i, text := range list {
		ep := join(at, key) + "[" + strconv.Itoa(i) + "]"
		expanded, skip, err := l.expand(text)
		if err != nil {
			l.errAt(ep, "", "%s %q: %v", key, text, err)
			continue
		}
		if skip {
			continue
		}
		g, err := rules.CompileGlob(expanded)
		if err != nil {
			l.errAt(ep, "see the glob syntax in `go doc supervisor/patterns`", "%s %q: %v", key, text, err)
			continue
		}
		out = append(out, g)
	}
	if len(list) > 0 && len(out) == 0 && l.dropHome {
		// Every glob was a ${HOME} one: match nothing rather than anything.
		out = append(out, rules.NoMatch())
	}
	return out
}

// expand replaces a leading ${HOME}.
func (l *loader) expand(text string) (string, bool, error) {
	if !strings.Contains(text, "${") {
		return text, false, nil
	}
	rest, ok := strings.CutPrefix(text, "${HOME}")
	if !ok || strings.Contains(rest, "${") {
		return "", false, errors.New("only ${HOME} is known, and only at the start")
	}
	if rest != "" && rest[0] != '/' {
		return "", false, errors.New("${HOME} must be followed by / or nothing")
	}
	if l.env.HOME == "" {
		if l.dropHome {
			return "", true, nil
		}
		return "", false, errors.New("${HOME} is not set (patterns.Env.HOME)")
	}
	if !path.IsAbs(l.env.HOME) {
		return "", false, fmt.Errorf("${HOME} = %q is not an absolute path", l.env.HOME)
	}
	return rules.EscapeGlob(path.Clean(l.env.HOME)) + rest, false, nil
}

func (l *loader) step(p *pattern, t map[string]any, at string, j int) *step {
	n0 := len(l.errs)
	l.checkKeys(t, at, stepKeys)
	s := &step{label: "step " + strconv.Itoa(j+1), pathRef: -1, capture: -1, denied: -1, count: 1}
	if name, ok := l.str(t, at, "name"); ok {
		s.label = name
	}
	if list, ok := l.strs(t, at, "syscalls"); ok {
		seen := map[string]bool{}
		for i, n := range list {
			names := []string{n}
			if strings.HasPrefix(n, "@") {
				g, ok := profiles.Group(n)
				if !ok {
					l.errAt(at+".syscalls["+strconv.Itoa(i)+"]", "groups: "+strings.Join(profiles.GroupNames(), " "), "unknown syscall group %q", n)
					continue
				}
				names = g
			} else if _, ok := profiles.SyscallNr(n); !ok {
				l.errAt(at+".syscalls["+strconv.Itoa(i)+"]", "`archangel syscalls --arch x86_64` lists valid names", "unknown syscall %q", n)
				continue
			}
			for _, n := range names {
				if !seen[n] {
					seen[n] = true
					s.syscalls = append(s.syscalls, n)
				}
			}
		}
		if len(list) == 0 {
			l.errAt(at+".syscalls", "leave syscalls out to match any call", "syscalls is empty: the step could never match")
		}
	}
	if list, ok := l.strs(t, at, "kinds"); ok {
		for i, n := range list {
			k, ok := kindByName(n)
			if !ok {
				l.errAt(at+".kinds["+strconv.Itoa(i)+"]", "kinds: "+kindNames(), "unknown kind %q", n)
				continue
			}
			s.kinds |= 1 << k
		}
	}
	s.paths = l.globs(t, at, "paths")
	if v, ok := l.str(t, at, "path"); ok {
		i, isRef := l.ref(p, at+".path", v, true)
		if !isRef {
			l.errAt(at+".path", `use paths = ["/glob"] for globs`, "path must name a capture (\"$name\"), not %q", v)
		}
		s.pathRef = i
	}
	if v, ok := l.str(t, at, "path_pid"); ok {
		switch v {
		case "other":
			s.pathPID = pidOther
		case "self":
			s.pathPID = pidSelf
		default:
			l.errAt(at+".path_pid", "", "path_pid %q: want other or self", v)
		}
	}
	s.exe = l.globs(t, at, "exe")
	s.notExe = l.globs(t, at, "not_exe")
	if list, ok := l.strs(t, at, "argv"); ok {
		s.hasArgv = true
		for i, a := range list {
			if err := rules.CheckGlob(a); err != nil {
				l.errAt(at+".argv["+strconv.Itoa(i)+"]", "", "argv %q: %v", a, err)
			}
		}
		s.argv = list
	}
	if list, ok := l.strs(t, at, "access"); ok {
		for i, a := range list {
			switch a {
			case "read":
				s.access |= analyzer.AccessRead
			case "write":
				s.access |= analyzer.AccessWrite
			case "exec":
				s.access |= analyzer.AccessExec
			default:
				l.errAt(at+".access["+strconv.Itoa(i)+"]", "", "access %q: want read, write or exec", a)
			}
		}
	}
	if list, ok := l.strs(t, at, "addr"); ok {
		s.addr = &addrSpec{}
		for i, a := range list {
			switch a {
			case "any":
				s.addr.any = true
			case "not_allowed":
				s.addr.notAllowed = true
			case "ip":
				s.addr.ip = true
			case "unix":
				s.addr.unix = true
			default:
				pfx, err := netip.ParsePrefix(a)
				if err != nil {
					if ad, err2 := netip.ParseAddr(a); err2 == nil {
						pfx, err = ad.Prefix(ad.BitLen())
					}
				}
				if err != nil {
					l.errAt(at+".addr["+strconv.Itoa(i)+"]", `want "any", "not_allowed", "ip", "unix", an address or a CIDR`, "bad addr %q", a)
					continue
				}
				s.addr.prefixes = append(s.addr.prefixes, normPrefix(pfx))
			}
		}
	}
	if b, ok := l.boolean(t, at, "denied"); ok {
		s.denied = 0
		if b {
			s.denied = 1
		}
	}
	if n, ok := l.integer(t, at, "flags"); ok {
		if n <= 0 {
			l.errAt(at+".flags", "", "flags must be a positive bit mask, not %d", n)
		}
		s.flags = uint64(n)
	}
	if v, ok := t["fd"]; ok {
		if c, ok := l.argValue(p, at+".fd", v); ok {
			c.index, c.op = 0, profiles.OpEq
			s.args = append(s.args, c)
		}
	}
	if list, ok := l.tables(t, at, "args"); ok {
		for i, a := range list {
			if c, ok := l.argCond(p, a, at+".args["+strconv.Itoa(i)+"]"); ok {
				s.args = append(s.args, c)
			}
		}
	}
	if n, ok := l.integer(t, at, "count"); ok {
		if n < 1 || n > maxCount {
			l.errAt(at+".count", "", "count %d is outside 1..%d", n, maxCount)
		} else {
			s.count = int(n)
		}
	}
	if b, ok := l.boolean(t, at, "same_process"); ok {
		if b && j == 0 {
			l.errAt(at+".same_process", "", "same_process on the first step: there is no earlier step")
		}
		s.sameProc = b
	}
	capName, hasCap := l.str(t, at, "capture")
	from, hasFrom := l.str(t, at, "from")
	switch {
	case hasCap && !hasFrom:
		l.errAt(at+".capture", `add from = "arg0".."arg5", "ret" or "path"`, "capture %q without from", capName)
	case hasFrom && !hasCap:
		l.errAt(at+".from", `add capture = "name"`, "from without capture")
	case hasCap:
		switch {
		case from == "ret":
			s.from = fromRet
		case from == "path":
			s.from = fromPath
		case len(from) == 4 && strings.HasPrefix(from, "arg") && from[3] >= '0' && from[3] <= '5':
			s.from = source(from[3] - '0')
		default:
			l.errAt(at+".from", "", "from %q: want arg0..arg5, ret or path", from)
		}
		switch {
		case !validName.MatchString(capName):
			l.errAt(at+".capture", "", "invalid capture name %q", capName)
		case slices.Contains(p.caps, capName):
			l.errAt(at+".capture", "", "capture %q is bound twice", capName)
		case len(p.caps) >= maxCaptures:
			l.errAt(at+".capture", "", "more than %d captures in one pattern", maxCaptures)
		default:
			s.capture = len(p.caps)
			p.caps = append(p.caps, capName)
			p.capPath = append(p.capPath, s.from == fromPath)
		}
	}
	if len(l.errs) > n0 {
		return nil
	}
	return s
}

// argValue parses value: an integer, an array of integers, or "$capture".
func (l *loader) argValue(p *pattern, path string, v any) (argCond, bool) {
	c := argCond{ref: -1}
	switch v := v.(type) {
	case int64:
		u, ok := l.int32Bits(path, v)
		if !ok {
			return c, false
		}
		c.values = []uint32{u}
	case []any:
		if len(v) == 0 {
			l.errAt(path, "", "empty list of values")
			return c, false
		}
		for i, e := range v {
			n, ok := e.(int64)
			if !ok {
				l.wrongType(path+"["+strconv.Itoa(i)+"]", "an integer", e)
				return c, false
			}
			u, ok := l.int32Bits(path+"["+strconv.Itoa(i)+"]", n)
			if !ok {
				return c, false
			}
			c.values = append(c.values, u)
		}
	case string:
		i, isRef := l.ref(p, path, v, false)
		if !isRef {
			l.errAt(path, "", "value %q: want an integer, a list of integers or \"$capture\"", v)
			return c, false
		}
		if i < 0 {
			return c, false
		}
		c.ref = i
	default:
		l.wrongType(path, "an integer, a list of integers or \"$capture\"", v)
		return c, false
	}
	return c, true
}

func (l *loader) int32Bits(path string, n int64) (uint32, bool) {
	if n < math.MinInt32 || n > math.MaxUint32 {
		l.errAt(path, "arguments are compared as the 32-bit int the kernel reads", "value %d does not fit in 32 bits", n)
		return 0, false
	}
	return uint32(n), true
}

func (l *loader) argCond(p *pattern, t map[string]any, at string) (argCond, bool) {
	l.checkKeys(t, at, argKeys)
	idx, ok := l.integer(t, at, "index")
	if !ok || idx < 0 || idx > 5 {
		l.errAt(at, "", "args entry needs index = 0..5")
		return argCond{}, false
	}
	op := profiles.OpEq
	if s, ok := l.str(t, at, "op"); ok {
		if err := op.UnmarshalText([]byte(s)); err != nil {
			l.errAt(at+".op", "", "%v", err)
			return argCond{}, false
		}
	}
	v, ok := t["value"]
	if !ok {
		l.errAt(at, "", "args entry needs value")
		return argCond{}, false
	}
	c, ok := l.argValue(p, at+".value", v)
	if !ok {
		return c, false
	}
	c.index, c.op = int(idx), op
	if op == profiles.OpMaskedEq {
		m, ok := l.integer(t, at, "mask")
		if !ok {
			l.errAt(at, "", "masked_eq needs mask")
			return c, false
		}
		u, ok := l.int32Bits(at+".mask", m)
		if !ok {
			return c, false
		}
		c.mask = u
	} else if _, has := t["mask"]; has {
		l.errAt(at+".mask", "", "mask is only for op = \"masked_eq\"")
		return c, false
	}
	if c.ref >= 0 && op != profiles.OpEq && op != profiles.OpNe {
		l.errAt(at+".op", "", "a capture can only be compared with eq or ne")
		return c, false
	}
	if len(c.values) > 1 && op != profiles.OpEq && op != profiles.OpNe && op != profiles.OpMaskedEq {
		l.errAt(at+".value", "", "a list of values needs eq, ne or masked_eq")
		return c, false
	}
	return c, true
}

func normPrefix(p netip.Prefix) netip.Prefix {
	a := p.Addr()
	if a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96).Masked()
	}
	return netip.PrefixFrom(a.WithZone(""), p.Bits()).Masked()
}

func sortStrings(s []string) { slices.Sort(s) }
