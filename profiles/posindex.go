package profiles

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// posIndex maps the dotted path of every key, value and array element of a
// TOML document to its line:col. BurntSushi/toml reports positions only for
// syntax errors (its MetaData keeps key positions unexported), so the loader
// scans the document once more after a successful parse.
//
// Paths: keys joined with ".", array elements and array-of-table entries
// with "[i]": "syscalls.allow[2]", "syscalls.rule[0].args[1].op".
type posIndex struct {
	keys map[string]Pos // where the key (or table header) is written
	vals map[string]Pos // where the value (or array element) starts
}

// key returns the position of the key at path, falling back to its value
// and then to the nearest enclosing path that has one.
func (ix *posIndex) key(file, path string) Pos {
	return ix.lookup(file, path, ix.keys, ix.vals)
}

// val returns the position of the value at path (an array element's own
// position), falling back to its key and enclosing paths.
func (ix *posIndex) val(file, path string) Pos {
	return ix.lookup(file, path, ix.vals, ix.keys)
}

func (ix *posIndex) lookup(file, path string, first, second map[string]Pos) Pos {
	for {
		if p, ok := first[path]; ok {
			p.File = file
			return p
		}
		if p, ok := second[path]; ok {
			p.File = file
			return p
		}
		if path == "" {
			return Pos{File: file, Line: 1, Col: 1}
		}
		path = parentPath(path)
	}
}

func parentPath(path string) string {
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndexByte(path, '['); i >= 0 {
			return path[:i]
		}
	}
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return ""
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func indexPath(parent string, i int) string { return parent + "[" + strconv.Itoa(i) + "]" }

// tomlScanner is a lenient TOML tokenizer: it runs only on documents the
// real parser accepted, so it can skip anything it does not need.
type tomlScanner struct {
	src       string
	off       int
	line, col int
	ix        *posIndex
	arrays    map[string]int  // array-of-tables path -> entries so far
	isArray   map[string]bool // paths that are arrays of tables
	tablePath string
}

func buildPosIndex(src string) *posIndex {
	s := &tomlScanner{
		src: src, line: 1, col: 1,
		ix:      &posIndex{keys: map[string]Pos{}, vals: map[string]Pos{}},
		arrays:  map[string]int{},
		isArray: map[string]bool{},
	}
	defer func() { _ = recover() }() // never let the index break a load
	s.document()
	return s.ix
}

func (s *tomlScanner) pos() Pos { return Pos{Line: s.line, Col: s.col} }

func (s *tomlScanner) eof() bool { return s.off >= len(s.src) }

func (s *tomlScanner) peek() byte {
	if s.eof() {
		return 0
	}
	return s.src[s.off]
}

func (s *tomlScanner) advance() {
	if s.eof() {
		return
	}
	if s.src[s.off] == '\n' {
		s.line++
		s.col = 1
		s.off++
		return
	}
	_, n := utf8.DecodeRuneInString(s.src[s.off:])
	s.off += n
	s.col++
}

func (s *tomlScanner) skipN(n int) {
	for range n {
		s.advance()
	}
}

func (s *tomlScanner) hasPrefix(p string) bool { return strings.HasPrefix(s.src[s.off:], p) }

// skipSpace skips blanks and, when newlines is set, newlines and comments.
func (s *tomlScanner) skipSpace(newlines bool) {
	for !s.eof() {
		switch c := s.peek(); {
		case c == ' ' || c == '\t' || c == '\r':
			s.advance()
		case c == '#':
			for !s.eof() && s.peek() != '\n' {
				s.advance()
			}
		case c == '\n' && newlines:
			s.advance()
		default:
			return
		}
	}
}

func (s *tomlScanner) document() {
	for {
		s.skipSpace(true)
		if s.eof() {
			return
		}
		if s.peek() == '[' {
			s.header()
			continue
		}
		before := s.off
		s.keyValue(s.tablePath)
		if s.off == before { // not TOML we understand: never loop
			s.advance()
		}
	}
}

func (s *tomlScanner) header() {
	start := s.pos()
	array := s.hasPrefix("[[")
	if array {
		s.skipN(2)
	} else {
		s.advance()
	}
	keys := s.keyParts()
	path := ""
	for i, k := range keys {
		path = joinPath(path, k)
		last := i == len(keys)-1
		if last && array {
			s.isArray[path] = true
			n := s.arrays[path]
			s.arrays[path] = n + 1
			if _, ok := s.ix.keys[path]; !ok {
				s.ix.keys[path] = start
			}
			path = indexPath(path, n)
		} else if s.isArray[path] {
			path = indexPath(path, s.arrays[path]-1)
		}
	}
	s.ix.keys[path] = start
	s.tablePath = path
	for !s.eof() && s.peek() != '\n' && s.peek() != '#' {
		s.advance()
	}
}

// keyParts reads a dotted key up to '=' or ']' (not consumed).
func (s *tomlScanner) keyParts() []string {
	var parts []string
	for {
		s.skipSpace(false)
		switch c := s.peek(); c {
		case '"', '\'':
			parts = append(parts, s.quotedKey())
		default:
			start := s.off
			for !s.eof() {
				c := s.peek()
				if c == '.' || c == '=' || c == ']' || c == ' ' || c == '\t' {
					break
				}
				s.advance()
			}
			parts = append(parts, s.src[start:s.off])
		}
		s.skipSpace(false)
		if s.peek() == '.' {
			s.advance()
			continue
		}
		return parts
	}
}

func (s *tomlScanner) quotedKey() string {
	q := s.peek()
	start := s.off
	s.advance()
	for !s.eof() && s.peek() != q {
		if q == '"' && s.peek() == '\\' {
			s.advance()
		}
		s.advance()
	}
	s.advance()
	raw := s.src[start:s.off]
	if q == '"' {
		if v, err := strconv.Unquote(raw); err == nil {
			return v
		}
	}
	return strings.Trim(raw, "'\"")
}

func (s *tomlScanner) keyValue(table string) {
	keyPos := s.pos()
	parts := s.keyParts()
	path := table
	for _, k := range parts {
		path = joinPath(path, k)
		if _, ok := s.ix.keys[path]; !ok {
			s.ix.keys[path] = keyPos
		}
	}
	s.ix.keys[path] = keyPos
	s.skipSpace(false)
	if s.peek() == '=' {
		s.advance()
	}
	s.skipSpace(false)
	s.value(path)
}

func (s *tomlScanner) value(path string) {
	s.ix.vals[path] = s.pos()
	switch {
	case s.hasPrefix(`"""`):
		s.skipN(3)
		for !s.eof() && !s.hasPrefix(`"""`) {
			if s.peek() == '\\' {
				s.advance()
			}
			s.advance()
		}
		s.skipN(3)
		for s.peek() == '"' { // up to two quotes may end the content
			s.advance()
		}
	case s.hasPrefix(`'''`):
		s.skipN(3)
		for !s.eof() && !s.hasPrefix(`'''`) {
			s.advance()
		}
		s.skipN(3)
		for s.peek() == '\'' {
			s.advance()
		}
	case s.peek() == '"' || s.peek() == '\'':
		s.quotedKey()
	case s.peek() == '[':
		s.advance()
		for i := 0; ; i++ {
			s.skipSpace(true)
			if s.eof() || s.peek() == ']' {
				s.advance()
				return
			}
			before := s.off
			s.value(indexPath(path, i))
			s.skipSpace(true)
			if s.peek() == ',' || s.off == before {
				s.advance()
			}
		}
	case s.peek() == '{':
		s.advance()
		for {
			s.skipSpace(true)
			if s.eof() || s.peek() == '}' {
				s.advance()
				return
			}
			before := s.off
			s.keyValue(path)
			s.skipSpace(true)
			if s.peek() == ',' || s.off == before {
				s.advance()
			}
		}
	default: // number, bool, date-time (which may hold one space)
		for !s.eof() {
			c := s.peek()
			if c == ',' || c == ']' || c == '}' || c == '\n' || c == '#' || c == '\t' || c == '\r' {
				break
			}
			if c == ' ' {
				if s.off+1 < len(s.src) && isDigit(s.src[s.off+1]) && s.off >= 10 && s.src[s.off-3] == '-' {
					s.advance()
					continue
				}
				break
			}
			s.advance()
		}
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
