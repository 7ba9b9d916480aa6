package patterns

import (
	"strconv"
	"strings"

	"github.com/archangel-sandbox/archangel/profiles"
)

// posIndex maps dotted paths ("pattern[0].step[1].paths[2]") to where the
// key or value is written. BurntSushi/toml keeps key positions to itself,
// so the loader scans the document once more after a successful parse;
// the scanner can be lenient because the parser has accepted the text.
type posIndex struct {
	src       string
	off       int
	line, col int
	pos       map[string]profiles.Pos
	arrays    map[string]int
}

func buildPosIndex(src string) map[string]profiles.Pos {
	s := &posIndex{src: src, line: 1, col: 1, pos: map[string]profiles.Pos{}, arrays: map[string]int{}}
	s.scan()
	return s.pos
}

// lookupPos returns the position of path, or of its nearest enclosing
// path that has one, in file.
func lookupPos(ix map[string]profiles.Pos, file, path string) profiles.Pos {
	for {
		if p, ok := ix[path]; ok {
			p.File = file
			return p
		}
		if path == "" {
			return profiles.Pos{File: file, Line: 1, Col: 1}
		}
		if strings.HasSuffix(path, "]") {
			path = path[:strings.LastIndexByte(path, '[')]
		} else if i := strings.LastIndexByte(path, '.'); i >= 0 {
			path = path[:i]
		} else {
			path = ""
		}
	}
}

func (s *posIndex) peek() byte {
	if s.off < len(s.src) {
		return s.src[s.off]
	}
	return 0
}

func (s *posIndex) next() {
	if s.off >= len(s.src) {
		return
	}
	if s.src[s.off] == '\n' {
		s.line++
		s.col = 1
	} else if s.src[s.off]&0xC0 != 0x80 {
		s.col++
	}
	s.off++
	// Columns count runes: continuation bytes do not advance them.
	for s.off < len(s.src) && s.src[s.off]&0xC0 == 0x80 {
		s.off++
	}
}

func (s *posIndex) here() profiles.Pos { return profiles.Pos{Line: s.line, Col: s.col} }

// skipSpace skips blanks, and with nl also newlines and comments.
func (s *posIndex) skipSpace(nl bool) {
	for s.off < len(s.src) {
		switch c := s.peek(); {
		case c == ' ' || c == '\t' || c == '\r':
			s.next()
		case nl && c == '\n':
			s.next()
		case nl && c == '#':
			for s.off < len(s.src) && s.peek() != '\n' {
				s.next()
			}
		default:
			return
		}
	}
}

func (s *posIndex) skipLine() {
	for s.off < len(s.src) && s.peek() != '\n' {
		s.next()
	}
	s.next()
}

func (s *posIndex) scan() {
	section := ""
	for s.off < len(s.src) {
		s.skipSpace(true)
		if s.off >= len(s.src) {
			return
		}
		at := s.here()
		if s.peek() == '[' {
			double := strings.HasPrefix(s.src[s.off:], "[[")
			end := strings.IndexByte(s.src[s.off:], ']')
			if end < 0 {
				return
			}
			start := 1
			if double {
				start = 2
			}
			name := normKey(s.src[s.off+start : s.off+end])
			if double {
				parent, last := splitLast(name)
				base := name
				if parent != "" {
					base = resolveArray(s.arrays, parent) + "." + last
				}
				i := s.arrays[base]
				s.arrays[base] = i + 1
				section = base + "[" + strconv.Itoa(i) + "]"
			} else {
				section = name
			}
			s.pos[section] = at
			s.skipLine()
			continue
		}
		key := s.key()
		if key == "" {
			s.skipLine()
			continue
		}
		path := join(section, key)
		s.pos[path] = at
		s.skipSpace(false)
		if s.peek() != '=' {
			s.skipLine()
			continue
		}
		s.next()
		s.skipSpace(false)
		s.value(path)
	}
}

// resolveArray maps "pattern" to its current entry "pattern[3]".
func resolveArray(arrays map[string]int, name string) string {
	if n, ok := arrays[name]; ok && n > 0 {
		return name + "[" + strconv.Itoa(n-1) + "]"
	}
	return name
}

func splitLast(name string) (string, string) {
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		return name[:i], name[i+1:]
	}
	return "", name
}

func normKey(k string) string {
	parts := strings.Split(k, ".")
	for i, p := range parts {
		parts[i] = strings.Trim(strings.TrimSpace(p), `"'`)
	}
	return strings.Join(parts, ".")
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

// key reads a (possibly quoted, possibly dotted) key.
func (s *posIndex) key() string {
	var parts []string
	for {
		s.skipSpace(false)
		var part strings.Builder
		switch c := s.peek(); {
		case c == '"' || c == '\'':
			s.next()
			for s.off < len(s.src) && s.peek() != c && s.peek() != '\n' {
				if c == '"' && s.peek() == '\\' {
					s.next()
				}
				part.WriteByte(s.peek())
				s.next()
			}
			s.next()
		default:
			for s.off < len(s.src) {
				c := s.peek()
				if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
					part.WriteByte(c)
					s.next()
					continue
				}
				break
			}
		}
		if part.Len() == 0 {
			return strings.Join(parts, ".")
		}
		parts = append(parts, part.String())
		s.skipSpace(false)
		if s.peek() != '.' {
			return strings.Join(parts, ".")
		}
		s.next()
	}
}

// value skips one value, recording the positions of array elements and
// inline-table keys below path.
func (s *posIndex) value(path string) {
	switch c := s.peek(); c {
	case '[':
		s.next()
		for i := 0; s.off < len(s.src); i++ {
			from := s.off
			s.skipSpace(true)
			if s.peek() == ']' {
				s.next()
				return
			}
			el := path + "[" + strconv.Itoa(i) + "]"
			s.pos[el] = s.here()
			s.value(el)
			s.skipSpace(true)
			if s.peek() == ',' {
				s.next()
			}
			if s.off == from {
				s.next() // text this scanner does not understand: never stall
			}
		}
	case '{':
		s.next()
		for s.off < len(s.src) {
			from := s.off
			s.skipSpace(false)
			if s.peek() == '}' {
				s.next()
				return
			}
			at := s.here()
			k := s.key()
			if k == "" {
				s.next()
				continue
			}
			p := join(path, k)
			s.pos[p] = at
			s.skipSpace(false)
			if s.peek() == '=' {
				s.next()
			}
			s.skipSpace(false)
			s.value(p)
			s.skipSpace(false)
			if s.peek() == ',' {
				s.next()
			}
			if s.off == from {
				s.next()
			}
		}
	case '"', '\'':
		if strings.HasPrefix(s.src[s.off:], string([]byte{c, c, c})) {
			s.next()
			s.next()
			s.next()
			for s.off < len(s.src) && !strings.HasPrefix(s.src[s.off:], string([]byte{c, c, c})) {
				if c == '"' && s.peek() == '\\' {
					s.next()
				}
				s.next()
			}
			s.next()
			s.next()
			s.next()
			for s.peek() == c { // up to two quotes may close the content
				s.next()
			}
			return
		}
		s.next()
		for s.off < len(s.src) && s.peek() != c && s.peek() != '\n' {
			if c == '"' && s.peek() == '\\' {
				s.next()
			}
			s.next()
		}
		s.next()
	default:
		for s.off < len(s.src) {
			switch s.peek() {
			case ',', ']', '}', '\n', '#':
				return
			}
			s.next()
		}
	}
}
