package supervisor

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/archangel-sandbox/archangel/analyzer"
	"github.com/archangel-sandbox/archangel/profiles"
)

// Interactive learning (`archangel learn --ask`): each new kind of event
// that matters — a program started, a peer contacted or a port bound, a
// file opened outside the system directories, a privileged call — is
// shown decoded, and the answer decides it and goes into the profile.
// The target waits while the question is open.

// Answer is a reply to a question.
type Answer int

const (
	AllowOnce   Answer = iota // run it now, write nothing
	AllowAlways               // run it and write the allow into the profile
	Deny                      // refuse it (EPERM) and write the deny into the profile
)

// Asker puts questions to a person: it writes to out and reads a line
// from in for each.
type Asker struct {
	in  *bufio.Reader
	out io.Writer

	mu      sync.Mutex
	answers map[string]Answer // by question key
}

// NewAsker returns an Asker reading answers from in (a terminal) and
// writing questions to out.
func NewAsker(in io.Reader, out io.Writer) *Asker {
	return &Asker{in: bufio.NewReader(in), out: out, answers: map[string]Answer{}}
}

// systemPrefixes are recorded without asking: libraries, configuration,
// kernel interfaces.
var systemPrefixes = []string{"/usr/", "/lib/", "/lib64/", "/etc/", "/proc/", "/sys/", "/dev/", "/run/"}

// privilegedCalls are asked about whatever their arguments.
var privilegedCalls = map[string]bool{"ptrace": true, "mount": true, "umount2": true, "setuid": true, "setgid": true,
	"unshare": true, "setns": true, "init_module": true, "finit_module": true, "bpf": true, "perf_event_open": true,
	"kexec_load": true, "chroot": true, "pivot_root": true, "keyctl": true, "process_vm_writev": true}

// question returns the key and the text of the question a call raises,
// or "" when it is recorded without asking.
func question(name string, c *analyzer.Call) (key, text string) {
	who := "a process"
	if c != nil {
		who = fmt.Sprintf("%s[%d]", c.Process.Comm, c.Process.PID)
	}
	switch {
	case privilegedCalls[name]:
		return "syscall " + name, fmt.Sprintf("%s calls %s", who, name)
	case c == nil:
		return "", ""
	case (c.Kind == analyzer.KindExec || c.Kind == analyzer.KindOpen && c.Flags&unix.O_CREAT == 0) && !exists(c.Path):
		return "", "" // fails with ENOENT anyway (a PATH or library search)
	case c.Kind == analyzer.KindExec:
		return "exec " + c.Path, fmt.Sprintf("%s starts %s %s", who, c.Path, strings.Join(c.Argv, " "))
	case c.Kind == analyzer.KindConnect && c.Addr != nil && endpointText(c.Addr) != "":
		return "connect " + endpointText(c.Addr), fmt.Sprintf("%s contacts %s (%s)", who, endpointText(c.Addr), name)
	case c.Kind == analyzer.KindBind && c.Addr != nil:
		return "bind " + addrText(c.Addr), fmt.Sprintf("%s listens on %s", who, addrText(c.Addr))
	case c.Kind == analyzer.KindOpen && c.Path != "":
		for _, p := range systemPrefixes {
			if strings.HasPrefix(c.Path, p) {
				return "", ""
			}
		}
		verb := "reads"
		if c.Access&analyzer.AccessWrite != 0 {
			verb = "writes"
		}
		return "open " + c.Path, fmt.Sprintf("%s %s %s", who, verb, c.Path)
	}
	return "", ""
}

// ask returns the answer for a call: the one given before for the same
// key, or a new one from the person. A call that raises no question, or
// an unreadable answer stream, is allowed always (learning records it).
func (a *Asker) ask(name string, c *analyzer.Call) (Answer, string) {
	key, text := question(name, c)
	if key == "" {
		return AllowAlways, ""
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if ans, ok := a.answers[key]; ok && ans != AllowOnce {
		return ans, key
	}
	for {
		fmt.Fprintf(a.out, "archangel: %s — allow [o]nce, [a]lways, or [d]eny? ", text)
		line, err := a.in.ReadString('\n')
		switch strings.TrimSpace(strings.ToLower(line)) {
		case "o", "once":
			a.answers[key] = AllowOnce
			return AllowOnce, key
		case "a", "always", "":
			if err != nil && line == "" {
				return AllowAlways, key // no one to ask: record, as learn does
			}
			if strings.TrimSpace(line) == "" {
				continue
			}
			a.answers[key] = AllowAlways
			return AllowAlways, key
		case "d", "deny":
			a.answers[key] = Deny
			return Deny, key
		}
		if err != nil {
			return AllowAlways, key
		}
	}
}

// deny records a refusal in the learner, for the profile.
func (l *Learner) deny(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.denied == nil {
		l.denied = map[string]bool{}
	}
	l.denied[key] = true
}

// applyDenied writes the person's refusals into a learned profile's
// material: paths into files.deny, peers into network.deny, calls into
// the syscall deny list.
func (l *Learner) applyDenied(out *Learned) {
	out.DenyFiles, out.DenyNet, out.DenySyscalls = map[string]bool{}, map[string]bool{}, map[string]bool{}
	for key := range l.denied {
		kind, what, _ := strings.Cut(key, " ")
		switch kind {
		case "exec", "open":
			out.DenyFiles[escapeGlobText(what)] = true
			delete(out.Read, what)
			delete(out.Write, what)
			delete(out.Exec, what)
		case "connect", "bind":
			out.DenyNet[what] = true
			delete(out.Connect, what)
			delete(out.Bind, what)
		case "syscall":
			if _, ok := profiles.SyscallNr(what); ok {
				out.DenySyscalls[what] = true
				delete(out.Syscalls, what)
			}
		}
	}
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
