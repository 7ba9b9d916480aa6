package rules

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"unicode/utf8"
)

// errBadGlob is returned for a pattern that is not path.Match syntax.
var errBadGlob = errors.New("bad glob syntax")

// globMatch reports whether s matches the glob pattern: '*' matches any
// run of characters (including '/': callers hand it one path element, or an
// argv word or comm where '/' is an ordinary character), '?' one
// character, '[...]' a class as in path.Match, and '\' escapes the next
// character. An invalid pattern matches nothing. It never allocates, and it
// runs in O(len(pattern) * len(s)): on a mismatch only the last '*' is
// retried, which is enough because a later '*' can absorb whatever an
// earlier one would have.
func globMatch(pat, s string) bool {
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
					return false // trailing backslash: invalid
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

// matchClass matches r against the class starting at pat[px] == '['. It
// returns whether r is in the class, the index after the closing ']', and
// whether the class is well formed (path.Match syntax: an optional '^',
// then one or more ranges c or lo-hi, where c may be \-escaped and may not
// be '-' or ']' unescaped).
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

// classChar reads one (possibly escaped) character of a class at pat[i]
// and returns it and the next index, which is always < len(pat) when ok
// (a class must still be closed).
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

// checkGlob reports whether pat is a well-formed glob, and counts its
// wildcards ('*', '?', '[...]') and literal bytes (escaped characters
// count as literal).
func checkGlob(pat string) (wild, lit int, err error) {
	for i := 0; i < len(pat); {
		switch pat[i] {
		case '*', '?':
			wild++
			i++
		case '[':
			_, end, ok := matchClass(pat, i, 0)
			if !ok {
				return 0, 0, errBadGlob
			}
			wild++
			i = end
		case '\\':
			if i+1 >= len(pat) {
				return 0, 0, errBadGlob
			}
			_, n := utf8.DecodeRuneInString(pat[i+1:])
			lit += n
			i += 1 + n
		default:
			lit++
			i++
		}
	}
	return wild, lit, nil
}

// unescape removes the backslashes of a glob without wildcards.
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

// escapeGlob quotes the glob metacharacters of a literal string (an
// expanded ${HOME} may contain '[' or '*').
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

// elem is one compiled path element of a pathGlob.
type elem struct {
	text  string // the element as written (glob syntax)
	lit   string // unescaped text when the element has no wildcard
	wild  bool   // contains * ? or [...]
	dstar bool   // the whole element is "**"
}

func (e *elem) match(comp string) bool {
	if !e.wild {
		return e.lit == comp
	}
	return globMatch(e.text, comp)
}

// shape says whether a path glob can be written as a Landlock path-beneath
// rule.
type shape int

const (
	shapeOther   shape = iota // wildcards anywhere else
	shapeExact                // no wildcard: one path
	shapeSubtree              // literal prefix + "/**": the prefix and everything below
)

// spec is a pattern's specificity, compared lexicographically.
type spec struct {
	comps int // literal (wildcard-free) path elements
	chars int // literal bytes
	wild  int // wildcards; "**" counts as one
}

// key packs a spec into the top 44 bits of a comparison key (larger is more
// specific); the low 20 bits are left for the exec tie-breakers.
func (s spec) key() uint64 {
	return clamp(s.comps, 1<<11-1)<<52 | clamp(s.chars, 1<<16-1)<<36 | (1<<16-1-clamp(s.wild, 1<<16-1))<<20
}

func clamp(v, max int) uint64 {
	if v > max {
		v = max
	}
	return uint64(v)
}

// pathGlob is a compiled absolute path glob: '*', '?' and '[...]' match
// within one element, "**" as a whole element matches zero or more
// elements.
type pathGlob struct {
	text   string // cleaned, expanded pattern
	elems  []elem
	nlit   int    // leading literal elements, all covered by prefix
	prefix string // "/a/b" for the leading literal elements; "" if none
	spec   spec
	shape  shape
}

// compilePathGlob compiles an absolute glob. The pattern is cleaned like
// the paths it is matched against ("//", "." and ".." resolved lexically,
// no trailing slash), so "/usr/" is "/usr".
func compilePathGlob(pat string) (*pathGlob, error) {
	if !strings.HasPrefix(pat, "/") {
		return nil, fmt.Errorf("not an absolute path")
	}
	clean := path.Clean(pat)
	g := &pathGlob{text: clean}
	if clean != "/" {
		for _, t := range strings.Split(clean[1:], "/") {
			e := elem{text: t}
			if t == "**" {
				e.wild, e.dstar = true, true
				g.spec.wild++
			} else {
				wild, lit, err := checkGlob(t)
				if err != nil {
					return nil, fmt.Errorf("%w in element %q", err, t)
				}
				e.wild = wild > 0
				g.spec.wild += wild
				g.spec.chars += lit
				if !e.wild {
					e.lit = unescape(t)
					g.spec.comps++
				}
			}
			g.elems = append(g.elems, e)
		}
	}
	for g.nlit < len(g.elems) && !g.elems[g.nlit].wild {
		g.prefix += "/" + g.elems[g.nlit].lit
		g.nlit++
	}
	switch {
	case g.nlit == len(g.elems):
		g.shape = shapeExact
	case g.nlit == len(g.elems)-1 && g.elems[g.nlit].dstar:
		g.shape = shapeSubtree
	}
	return g, nil
}

// literal returns the path named by the literal prefix ("/" for none).
func (g *pathGlob) literal() string {
	if g.prefix == "" {
		return "/"
	}
	return g.prefix
}

// match reports whether the clean absolute path p matches. It does not
// allocate. Elements are the "characters" of a wildcard match in which
// "**" is the star, so the same last-star retry keeps it linear in
// len(elems) * len(p).
func (g *pathGlob) match(p string) bool {
	if len(p) == 0 || p[0] != '/' {
		return false
	}
	// The literal prefix, compared as a string.
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

// matchElems matches elems against p, a path without its leading '/'
// ("" is no elements).
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
			// No element left: a "**" that could take more would only
			// leave fewer.
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

// nextComp returns the element of p starting at i and the index of the one
// after it (len(p) at the end).
func nextComp(p string, i int) (string, int) {
	j := strings.IndexByte(p[i:], '/')
	if j < 0 {
		return p[i:], len(p)
	}
	return p[i : i+j], i + j + 1
}

// mayMatchBelow reports whether g may match dir or a path below it (dir is
// a clean absolute literal path). It is exact unless g has a "**" among
// the elements compared with dir, where it conservatively says yes.
func (g *pathGlob) mayMatchBelow(dir string) bool {
	rest := ""
	if dir != "/" {
		rest = dir[1:]
	}
	ei := 0
	for pi := 0; pi < len(rest); {
		if ei >= len(g.elems) {
			return false // g names an ancestor of dir
		}
		if g.elems[ei].dstar {
			return true
		}
		comp, next := nextComp(rest, pi)
		if !g.elems[ei].match(comp) {
			return false
		}
		ei++
		pi = next
	}
	return true
}

// isClean reports whether p is an absolute path in the form Call.Path
// promises: no empty, "." or ".." elements and no trailing slash.
func isClean(p string) bool {
	if len(p) == 0 || p[0] != '/' {
		return false
	}
	if p == "/" {
		return true
	}
	if p[len(p)-1] == '/' {
		return false
	}
	for i := 1; i < len(p); {
		comp, next := nextComp(p, i)
		if comp == "" || comp == "." || comp == ".." {
			return false
		}
		i = next
	}
	return true
}

// cleanPath returns p in clean form; it allocates only when p is not clean
// already. A relative path is returned as is (and matches no rule).
func cleanPath(p string) string {
	if isClean(p) || !strings.HasPrefix(p, "/") {
		return p
	}
	return path.Clean(p)
}
