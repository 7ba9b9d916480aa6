package integration

import (
	"encoding/json"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/archangel-sandbox/archangel/filter"
	"github.com/archangel-sandbox/archangel/profiles"
)

// ociRuntimeVictim plays runc's part of the seccomp agent protocol:
// ociruntime SOCKET PROFILE ID METADATA NAME...: on one locked thread,
// load PROFILE's filter with a new listener, send the listener and the
// container state to SOCKET the way runc does, then make each system call
// NAME and print how it ended.
func ociRuntimeVictim(args []string) int {
	sock, profile, id, metadata, calls := args[0], args[1], args[2], args[3], args[4:]
	p, err := profiles.Load(profile)
	if err != nil {
		fmt.Println("load:", err)
		return 1
	}
	prog, err := filter.Compile(p, filter.Options{Arch: filter.ArchAMD64, Mode: profiles.ModeEnforce})
	if err != nil {
		fmt.Println("compile:", err)
		return 1
	}
	insns := make([]unix.SockFilter, len(prog.Insns))
	for i, in := range prog.Insns {
		insns[i] = unix.SockFilter{Code: in.Code, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	runtime.LockOSThread() // the filter binds this thread only
	conn, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err == nil {
		err = unix.Connect(conn, &unix.SockaddrUnix{Name: sock})
	}
	if err != nil {
		fmt.Println("connect:", err)
		return 1
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fmt.Println("no_new_privs:", err)
		return 1
	}
	fprog := unix.SockFprog{Len: uint16(len(insns)), Filter: &insns[0]}
	r, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_NEW_LISTENER, uintptr(unsafe.Pointer(&fprog)))
	if e != 0 {
		fmt.Println("seccomp:", e)
		return 1
	}
	listener := int(r)
	pid := unix.Getpid()
	state, _ := json.Marshal(map[string]any{
		"ociVersion": "1.0.2", "fds": []string{"seccompFd"}, "pid": pid, "metadata": metadata,
		"state": map[string]any{"ociVersion": "1.0.2", "id": id, "status": "creating", "pid": pid, "bundle": "/nonexistent"},
	})
	if err := unix.Sendmsg(conn, state, unix.UnixRights(listener), nil, 0); err != nil {
		fmt.Println("send:", err)
		return 1
	}
	unix.Close(listener)
	unix.Close(conn)
	for _, c := range calls {
		fmt.Println(callByName(c))
	}
	return 0
}
