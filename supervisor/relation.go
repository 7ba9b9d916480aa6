package supervisor

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/archangel-sandbox/archangel/internal/kernel"
	"github.com/archangel-sandbox/archangel/profiles"
)

// Cross-process access (ptrace, process_vm_readv/writev, pidfd_getfd) is
// allowed only on the caller's own descendants: BPF sees a PID but not whose
// it is. The verdict depends on the process tree at the moment of the call,
// so it is never cached. The PID is a scalar argument, so CONTINUE cannot be
// raced by rewriting memory; a target that dies and whose PID is reused
// between the check and the call is the same race the kernel's own
// Yama ptrace_scope=1 check has.

const (
	sysPtrace          = 101
	sysProcessVMReadv  = 310
	sysProcessVMWritev = 311
	sysPidfdGetfd      = 438
	ptraceTraceme      = 0
)

// relationVerdict decides a cross-process call by ancestry. ok is false
// for calls it does not judge.
func relationVerdict(n *kernel.Notif) (d decision, ok bool) {
	var target int
	switch n.Data.Nr {
	case sysPtrace:
		if n.Data.Args[0] == ptraceTraceme {
			// The caller offers itself to its own parent.
			return decision{action: profiles.ActionAllow, source: SourceRule, layer: SourceRule, rule: "builtin: ptrace(PTRACE_TRACEME)", nocache: true}, true
		}
		target = int(int32(n.Data.Args[1]))
	case sysProcessVMReadv, sysProcessVMWritev:
		target = int(int32(n.Data.Args[0]))
	case sysPidfdGetfd:
		target = pidOfPidfd(int(n.PID), int(int32(n.Data.Args[0])))
	default:
		return decision{}, false
	}
	if caller := tgidOf(int(n.PID)); target > 0 && caller > 0 && isDescendant(target, caller) {
		return decision{action: profiles.ActionAllow, source: SourceRule, layer: SourceRule, rule: "builtin: target is a descendant of the caller", nocache: true}, true
	}
	return decision{action: profiles.ActionErrno, errno: profiles.Errno(unix.EPERM), source: SourceRule, layer: SourceRule,
		rule: "builtin: target is not a descendant of the caller", nocache: true}, true
}

// statusField returns a field of /proc/PID/status.
func statusField(pid int, field string) (string, bool) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

func tgidOf(tid int) int {
	v, ok := statusField(tid, "Tgid")
	if !ok {
		return 0
	}
	n, _ := strconv.Atoi(v)
	return n
}

// isDescendant reports whether pid is a strict descendant of ancestor.
func isDescendant(pid, ancestor int) bool {
	pid = tgidOf(pid)
	for i := 0; i < 4096 && pid > 1; i++ {
		v, ok := statusField(pid, "PPid")
		if !ok {
			return false
		}
		pid, _ = strconv.Atoi(v)
		if pid == ancestor {
			return true
		}
	}
	return false
}

// pidOfPidfd reads which process a pidfd of process pid refers to.
func pidOfPidfd(pid, fd int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%d", pid, fd))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Pid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// BuiltinRule describes the supervisor's own rule for syscall nr, or "".
func BuiltinRule(nr int) string {
	switch nr {
	case sysPtrace, sysProcessVMReadv, sysProcessVMWritev, sysPidfdGetfd:
		return "builtin: allowed only when the target process descends from the caller (PTRACE_TRACEME always); EPERM otherwise; never cached"
	}
	return ""
}
