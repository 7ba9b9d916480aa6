package patterns

import "strings"

// Path globs and argv word globs are supervisor/rules' (rules.CompileGlob,
// rules.WordMatch): one syntax for every layer that matches paths.

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
