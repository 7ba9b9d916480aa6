package profiles_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/archangel-sandbox/archangel/profiles"
)

func ExampleLoad() {
	p, err := profiles.Load("default")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, name := range []string{"read", "execve", "sendto", "mount", "syslog"} {
		sp := p.Policy(name)
		fmt.Printf("%-7s nr=%-3d %-6s %-6s conds=%d  (%s)\n", name, sp.Nr, sp.Action, errnoText(sp), len(sp.Conds), sp.Source)
	}
	// Output:
	// read    nr=0   allow         conds=0  (syscalls.allow)
	// execve  nr=59  notify        conds=0  (syscalls.notify)
	// sendto  nr=44  notify        conds=1  (syscalls.notify)
	// mount   nr=165 deny   EPERM  conds=0  (syscalls.deny)
	// syslog  nr=103 deny   ENOSYS conds=0  (profile.default)
}

func errnoText(sp profiles.SyscallPolicy) string {
	if sp.Action != profiles.ActionErrno {
		return ""
	}
	return sp.Errno.String()
}

func ExampleLoad_error() {
	dir, _ := os.MkdirTemp("", "archangel-example")
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "web.toml")
	os.WriteFile(file, []byte(`[profile]
extends = ["default"]

[syscalls]
allow = ["opn"]
`), 0o644)
	_, err := profiles.Load(file)
	for _, e := range profiles.Errors(err) {
		fmt.Printf("web.toml:%d:%d: %s\n\thint: %s\n", e.Pos.Line, e.Pos.Col, e.Msg, e.Hint)
	}
	// Output:
	// web.toml:5:10: unknown syscall "opn" in syscalls.allow (did you mean "open"?)
	// 	hint: `archangel syscalls` lists valid names
}
