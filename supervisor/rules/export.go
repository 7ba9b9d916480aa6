package rules

// Glob is a compiled path glob with the [files] syntax (see the package
// doc), for the layers beside the rules that match paths too
// (supervisor/patterns). Matching never allocates.
type Glob struct {
	g *pathGlob // nil: matches nothing
}

// CompileGlob compiles an absolute path glob.
func CompileGlob(pattern string) (*Glob, error) {
	g, err := compilePathGlob(pattern)
	if err != nil {
		return nil, err
	}
	return &Glob{g: g}, nil
}

// NoMatch returns a Glob that matches no path.
func NoMatch() *Glob { return &Glob{} }

// Match reports whether path matches.
func (g *Glob) Match(path string) bool { return g != nil && g.g != nil && g.g.match(path) }

// String returns the pattern as compiled (cleaned).
func (g *Glob) String() string {
	if g == nil || g.g == nil {
		return "<none>"
	}
	return g.g.text
}

// WordMatch reports whether s matches pattern where '/' is an ordinary
// character (argv words, comm).
func WordMatch(pattern, s string) bool { return globMatch(pattern, s) }

// CheckGlob reports a pattern that is not valid glob syntax.
func CheckGlob(pattern string) error {
	_, _, err := checkGlob(pattern)
	return err
}

// EscapeGlob quotes the glob metacharacters of s.
func EscapeGlob(s string) string { return escapeGlob(s) }
