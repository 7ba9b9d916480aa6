package patterns

import (
	"errors"
	"path"
	"strings"
	"unicode/utf8"
)

// The matchers below follow supervisor/rules (glob.go), which does not
// export its own: a path glob is a sequence of elements; in an element '*'
// matches any run of characters, '?' one character, '[a-z]' / '[^a-z]' a
// class and '\' escapes the next character (path.Match syntax), none of
// them matching '/'; "**" as a whole element matches zero or more
// elements. Word globs (argv) use the same syntax with '/' ordinary.
// Neither allocates when matching.

var errBadGlob = errors.New("bad glob syntax")

// wordMatch reports whether s matches the glob pat ('*' matches '/' too).
// On a mismatch only the last '*' is retried: O(len(pat) * len(s)).
func wordMatch(pat, s string) bool {
	px, sx := 0, 0
	starPx, starSx := -1, 0
	for px < len(pat) || sx < len(s) {
		if px < len(pat) {
			switch c := pat[px]; c {
			case '*':
				starPx, starSx = px, sx
				px++
				continue
			case '?':
				if sx < len(s) {
					_, n := utf8.DecodeRuneInString(s[sx:])
					px++
					sx += n
					continue
				}
			case '[':
				if sx < len(s) {
					r, n := utf8.DecodeRuneInString(s[sx:])
					ok, end, valid := matchClass(pat, px, r)
					if !valid {
						return false
					}
					if ok {
						px = end
						sx += n
						continue
					}
				}
			case '\\':
				if px+1 >= len(pat) {
					return false
				}
				_, pn := utf8.DecodeRuneInString(pat[px+1:])
				if sx+pn <= len(s) && s[sx:sx+pn] == pat[px+1:px+1+pn] {
					px += 1 + pn
					sx += pn
					continue
				}
			default:
				if sx < len(s) && s[sx] == c {
					px++
					sx++
					continue
				}
			}
		}
		if starPx >= 0 && starSx < len(s) {
			_, n := utf8.DecodeRuneInString(s[starSx:])
			starSx += n
			px, sx = starPx+1, starSx
			continue
		}
		return false
	}
	return true
}

// matchClass matches r against the class at pat[px] == '['; it returns
// whether r is in it, the index after ']', and whether it is well formed.
func matchClass(pat string, px int, r rune) (matched bool, end int, valid bool) {
	i := px + 1
	neg := false
	if i < len(pat) && pat[i] == '^' {
		neg = true
		i++
	}
	in := false
	for n := 0; ; n++ {
		if n > 0 && i < len(pat) && pat[i] == ']' {
			return in != neg, i + 1, true
		}
		var lo, hi rune
		var ok bool
		if lo, i, ok = classChar(pat, i); !ok {
			return false, 0, false
		}
		hi = lo
		if pat[i] == '-' {
			if hi, i, ok = classChar(pat, i+1); !ok {
				return false, 0, false
			}
		}
		if lo <= r && r <= hi {
			in = true
		}
	}
}

func classChar(pat string, i int) (rune, int, bool) {
	if i >= len(pat) || pat[i] == '-' || pat[i] == ']' {
		return 0, 0, false
	}
	if pat[i] == '\\' {
		i++
		if i >= len(pat) {
			return 0, 0, false
		}
	}
	r, n := utf8.DecodeRuneInString(pat[i:])
	if r == utf8.RuneError && n == 1 {
		return 0, 0, false
	}
	i += n
	if i >= len(pat) {
		return 0, 0, false
	}
	return r, i, true
}

// checkGlob reports whether pat is well formed and whether it has a
// wildcard.
func checkGlob(pat string) (wild bool, err error) {
	for i := 0; i < len(pat); {
		switch pat[i] {
		case '*', '?':
			wild = true
			i++
		case '[':
			_, end, ok := matchClass(pat, i, 0)
			if !ok {
				return false, errBadGlob
			}
			wild = true
			i = end
		case '\\':
			if i+1 >= len(pat) {
				return false, errBadGlob
			}
			_, n := utf8.DecodeRuneInString(pat[i+1:])
			i += 1 + n
		default:
			i++
		}
	}
	return wild, nil
}

func unescape(pat string) string {
	if !strings.Contains(pat, `\`) {
		return pat
	}
	var b strings.Builder
	for i := 0; i < len(pat); i++ {
		if pat[i] == '\\' && i+1 < len(pat) {
			i++
		}
		b.WriteByte(pat[i])
	}
	return b.String()
}

// escapeGlob quotes glob metacharacters of a literal (an expanded ${HOME}).
func escapeGlob(s string) string {
	if !strings.ContainsAny(s, `*?[\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

type elem struct {
	text  string
	lit   string // unescaped, when !wild
	wild  bool
	dstar bool // the whole element is "**"
}

func (e *elem) match(comp string) bool {
	if !e.wild {
		return e.lit == comp
	}
	return wordMatch(e.text, comp)
}

// pathGlob is a compiled absolute path glob.
type pathGlob struct {
	text   string
	elems  []elem
	nlit   int    // leading literal elements
	prefix string // "/a/b" for them; "" if none
}

// compilePathGlob compiles an absolute glob, cleaned like the paths it
// meets ("/usr/" is "/usr").
func compilePathGlob(pat string) (*pathGlob, error) {
	if !strings.HasPrefix(pat, "/") {
		return nil, errors.New("not an absolute path")
	}
	clean := path.Clean(pat)
	g := &pathGlob{text: clean}
	if clean != "/" {
		for _, t := range strings.Split(clean[1:], "/") {
			e := elem{text: t}
			if t == "**" {
				e.wild, e.dstar = true, true
			} else {
				wild, err := checkGlob(t)
				if err != nil {
					return nil, errors.New("bad glob syntax in element " + quote(t))
				}
				e.wild = wild
				if !wild {
					e.lit = unescape(t)
				}
			}
			g.elems = append(g.elems, e)
		}
	}
	for g.nlit < len(g.elems) && !g.elems[g.nlit].wild {
		g.prefix += "/" + g.elems[g.nlit].lit
		g.nlit++
	}
	return g, nil
}

// match reports whether the clean absolute path p matches; it does not
// allocate.
func (g *pathGlob) match(p string) bool {
	if len(p) == 0 || p[0] != '/' {
		return false
	}
	rest := p[1:]
	if g.prefix != "" {
		if !strings.HasPrefix(p, g.prefix) {
			return false
		}
		switch {
		case len(p) == len(g.prefix):
			rest = ""
		case p[len(g.prefix)] == '/':
			rest = p[len(g.prefix)+1:]
		default:
			return false
		}
	}
	return matchElems(g.elems[g.nlit:], rest)
}

func matchElems(elems []elem, p string) bool {
	ei, pi := 0, 0
	starEi, starPi := -1, 0
	for {
		if ei < len(elems) && elems[ei].dstar {
			starEi, starPi = ei, pi
			ei++
			continue
		}
		if pi >= len(p) {
			return ei == len(elems)
		}
		if ei < len(elems) {
			comp, next := nextComp(p, pi)
			if elems[ei].match(comp) {
				ei++
				pi = next
				continue
			}
		}
		if starEi < 0 {
			return false
		}
		_, starPi = nextComp(p, starPi)
		ei, pi = starEi+1, starPi
	}
}

func nextComp(p string, i int) (string, int) {
	j := strings.IndexByte(p[i:], '/')
	if j < 0 {
		return p[i:], len(p)
	}
	return p[i : i+j], i + j + 1
}

// procPID returns the element after "/proc/" of a path ("1234", "self",
// "thread-self"), or "" when p is not below /proc/X/.
func procPID(p string) string {
	rest, ok := strings.CutPrefix(p, "/proc/")
	if !ok {
		return ""
	}
	comp, next := nextComp(rest, 0)
	if next >= len(rest) {
		return "" // /proc/X itself
	}
	return comp
}

func quote(s string) string { return `"` + s + `"` }
