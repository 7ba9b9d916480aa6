package filter_test

import (
	"fmt"

	"github.com/archangel-sandbox/archangel/filter"
	"github.com/archangel-sandbox/archangel/profiles"
)

func ExampleCompile() {
	p, err := profiles.Parse("web.toml", []byte(`
[profile]
default = "allow"
[syscalls]
deny = ["ptrace"]
errno = "EPERM"
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	prog, err := filter.Compile(p, filter.Options{Arch: filter.ArchAMD64})
	if err != nil {
		fmt.Println(err)
		return
	}
	ptrace, _ := profiles.SyscallNr("ptrace")
	for _, nr := range []int{ptrace, 39} {
		ret, _ := prog.Run(filter.Data{Nr: int32(nr), Arch: filter.AuditArchX8664})
		action, errno := filter.Decode(ret)
		name, _ := profiles.SyscallName(nr)
		fmt.Println(name, action, errno)
	}
	// Output:
	// ptrace deny EPERM
	// getpid allow 0
}
