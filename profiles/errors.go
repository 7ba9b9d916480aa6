package profiles

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
)

// Error is one problem found in a profile: what, where, and how to fix it.
// Load and Parse return every problem at once, joined with errors.Join;
// use errors.As to get at the first, or Errors to list them all.
type Error struct {
	Pos  Pos
	Msg  string
	Hint string // may be empty
}

func (e *Error) Error() string {
	s := e.Pos.String() + ": " + e.Msg
	if e.Hint != "" {
		s += "\n\thint: " + e.Hint
	}
	return s
}

// Errors returns the profile errors joined in err, in order.
func Errors(err error) []*Error {
	var out []*Error
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if e, ok := err.(*Error); ok {
			out = append(out, e)
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var e *Error
		if errors.As(err, &e) {
			out = append(out, e)
		}
	}
	walk(err)
	return out
}

type errList struct{ errs []*Error }

func (l *errList) add(pos Pos, hint, format string, args ...any) {
	l.errs = append(l.errs, &Error{Pos: pos, Msg: fmt.Sprintf(format, args...), Hint: hint})
}

func (l *errList) addAll(err error) {
	if err == nil {
		return
	}
	es := Errors(err)
	if len(es) == 0 {
		l.errs = append(l.errs, &Error{Msg: err.Error()})
		return
	}
	l.errs = append(l.errs, es...)
}

// err returns the problems sorted by file and position (stable, so that
// problems at one place keep the order they were found in), joined.
func (l *errList) err() error {
	if len(l.errs) == 0 {
		return nil
	}
	slices.SortStableFunc(l.errs, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Pos.File, b.Pos.File), cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Col, b.Pos.Col))
	})
	// The same problem can be found twice (a base loaded by two profiles).
	errs := make([]error, 0, len(l.errs))
	seen := map[string]bool{}
	for _, e := range l.errs {
		if s := e.Error(); !seen[s] {
			seen[s] = true
			errs = append(errs, e)
		}
	}
	return errors.Join(errs...)
}
