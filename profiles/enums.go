package profiles

import (
	"fmt"
	"strconv"
	"strings"
)

var actionNames = [...]string{
	ActionUnset:  "unset",
	ActionAllow:  "allow",
	ActionErrno:  "deny",
	ActionKill:   "kill",
	ActionLog:    "log",
	ActionNotify: "notify",
}

func (a Action) String() string {
	if a >= 0 && int(a) < len(actionNames) {
		return actionNames[a]
	}
	return "Action(" + strconv.Itoa(int(a)) + ")"
}

// MarshalText writes the profile spelling of a ("deny" for ActionErrno;
// "unset" for ActionUnset, which UnmarshalText does not accept).
func (a Action) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText accepts allow, deny (alias errno), kill, log and notify.
func (a *Action) UnmarshalText(text []byte) error {
	switch string(text) {
	case "allow":
		*a = ActionAllow
	case "deny", "errno":
		*a = ActionErrno
	case "kill":
		*a = ActionKill
	case "log":
		*a = ActionLog
	case "notify":
		*a = ActionNotify
	default:
		return fmt.Errorf("unknown action %q (want allow, deny, kill, log or notify)%s",
			text, didYouMeanSuffix(string(text), []string{"allow", "deny", "errno", "kill", "log", "notify"}))
	}
	return nil
}

// strictness orders actions for "the stricter action wins" between groups:
// kill > deny > notify > log > allow.
func (a Action) strictness() int {
	switch a {
	case ActionKill:
		return 5
	case ActionErrno:
		return 4
	case ActionNotify:
		return 3
	case ActionLog:
		return 2
	case ActionAllow:
		return 1
	}
	return 0
}

// runs reports whether the kernel lets the call run without asking anyone.
func (a Action) runs() bool { return a == ActionAllow || a == ActionLog }

// verb is a past participle for messages: "allowed", "denied", ...
func (a Action) verb() string {
	switch a {
	case ActionAllow:
		return "allowed"
	case ActionErrno:
		return "denied"
	case ActionKill:
		return "killed"
	case ActionLog:
		return "logged"
	case ActionNotify:
		return "notified"
	}
	return "unset"
}

func (m Mode) String() string {
	switch m {
	case ModeEnforce:
		return "enforce"
	case ModeAudit:
		return "audit"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// MarshalText writes "enforce" or "audit".
func (m Mode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText accepts enforce and audit.
func (m *Mode) UnmarshalText(text []byte) error {
	switch string(text) {
	case "enforce":
		*m = ModeEnforce
	case "audit":
		*m = ModeAudit
	default:
		return fmt.Errorf("unknown mode %q (want enforce or audit)%s",
			text, didYouMeanSuffix(string(text), []string{"enforce", "audit"}))
	}
	return nil
}

var opNames = [...]string{
	OpEq:       "eq",
	OpNe:       "ne",
	OpLt:       "lt",
	OpLe:       "le",
	OpGt:       "gt",
	OpGe:       "ge",
	OpMaskedEq: "masked_eq",
}

func (o Op) String() string {
	if o >= 0 && int(o) < len(opNames) {
		return opNames[o]
	}
	return "Op(" + strconv.Itoa(int(o)) + ")"
}

// MarshalText writes the profile spelling of o.
func (o Op) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// UnmarshalText accepts eq, ne, lt, le, gt, ge and masked_eq.
func (o *Op) UnmarshalText(text []byte) error {
	for i, n := range opNames {
		if n == string(text) {
			*o = Op(i)
			return nil
		}
	}
	return fmt.Errorf("unknown op %q (want eq, ne, lt, le, gt, ge or masked_eq)%s",
		text, didYouMeanSuffix(string(text), opNames[:]))
}

// MaxErrno is the largest errno a seccomp filter can return
// (SECCOMP_RET_DATA is 16 bits, but the kernel clamps to MAX_ERRNO).
const MaxErrno = 4095

var (
	errnoByName = map[string]Errno{}
	errnoNames  = map[Errno]string{} // canonical (first) name
	errnoDescs  = map[Errno]string{}
)

func init() {
	for _, e := range errnoTable {
		errnoByName[e.Name] = e.Nr
		if _, ok := errnoNames[e.Nr]; !ok {
			errnoNames[e.Nr] = e.Name
			errnoDescs[e.Nr] = e.Desc
		}
	}
}

// ErrnoByName returns the Linux errno called name ("EPERM"; aliases such as
// EWOULDBLOCK and ENOTSUP included). Names are case-sensitive.
func ErrnoByName(name string) (Errno, bool) {
	e, ok := errnoByName[name]
	return e, ok
}

// ErrnoNames returns every errno name the profiles accept, sorted.
func ErrnoNames() []string {
	names := make([]string, 0, len(errnoByName))
	for n := range errnoByName {
		names = append(names, n)
	}
	sortStrings(names)
	return names
}

// String returns the canonical name ("EPERM"), or the number when the
// errno has no name.
func (e Errno) String() string {
	if n, ok := errnoNames[e]; ok {
		return n
	}
	return strconv.Itoa(int(e))
}

// Description returns the kernel's comment for e ("Operation not permitted").
func (e Errno) Description() string { return errnoDescs[e] }

// MarshalText writes the canonical name, or the number.
func (e Errno) MarshalText() ([]byte, error) { return []byte(e.String()), nil }

// UnmarshalText accepts an errno name ("EPERM") or a number 1..4095.
func (e *Errno) UnmarshalText(text []byte) error {
	s := string(text)
	if v, ok := errnoByName[s]; ok {
		*e = v
		return nil
	}
	if n, err := strconv.ParseUint(s, 0, 64); err == nil {
		return e.setNumber(n)
	}
	if v, ok := errnoByName[strings.ToUpper(s)]; ok {
		return fmt.Errorf("unknown errno %q (errno names are upper case: did you mean %q?)", s, v.String())
	}
	if sugg, ok := didYouMean(s, ErrnoNames()); ok {
		return fmt.Errorf("unknown errno %q (did you mean %q?)", s, sugg)
	}
	return fmt.Errorf("unknown errno %q (want a name such as EPERM, EACCES or ENOSYS, or a number 1..%d)", s, MaxErrno)
}

func (e *Errno) setNumber(n uint64) error {
	if n < 1 || n > MaxErrno {
		return fmt.Errorf("errno %d out of range (want 1..%d)", n, MaxErrno)
	}
	*e = Errno(n)
	return nil
}
