package patterns_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/archangel-sandbox/archangel/analyzer"
	"github.com/archangel-sandbox/archangel/profiles"
	"github.com/archangel-sandbox/archangel/supervisor/patterns"
)

func ExampleLoad() {
	e, err := patterns.Load("ci.toml", []byte(`
[[pattern]]
name = "npm-postinstall-shell"
description = "a node process runs a shell after contacting a non-allowed host"
risk = 0.6
verdict = "log"
scope = "tree"
window = "2m"

  [[pattern.step]]
  syscalls = ["connect"]
  exe = ["/**/bin/node"]
  addr = ["not_allowed"]

  [[pattern.step]]
  syscalls = ["execve"]
  paths = ["/**/bin/sh", "/**/bin/bash"]
`), patterns.Env{})
	if err != nil {
		fmt.Println(err)
		return
	}
	t0 := time.Unix(1700000000, 0)
	node := analyzer.Process{PID: 40, Exe: "/usr/local/bin/node"}
	e.Observe(patterns.Event{Time: t0, Verdict: profiles.ActionUnset, Call: &analyzer.Call{
		Name: "connect", Kind: analyzer.KindConnect, Process: node,
		Addr: &analyzer.SockAddr{Family: 2, Addr: netip.MustParseAddrPort("198.51.100.7:443")},
	}})
	for _, m := range e.Observe(patterns.Event{Time: t0.Add(time.Second), Tree: []int{40}, Call: &analyzer.Call{
		Name: "execve", Kind: analyzer.KindExec, Path: "/bin/sh", Process: analyzer.Process{PID: 41, Exe: "/usr/local/bin/node"},
	}}) {
		fmt.Println(m.Pattern, m.Verdict, m.Risk)
		for _, s := range m.Steps {
			fmt.Println(" ", s)
		}
	}

	_, err = patterns.Load("bad.toml", []byte("[[pattern]]\nname = \"x\"\nrisk = 0.5\nverdict = \"deny\"\n[[pattern.step]]\nsyscalls = [\"exceve\"]\n"), patterns.Env{})
	fmt.Println(err)
	// Output:
	// npm-postinstall-shell log 0.6
	//   step 1: pid 40 connect 198.51.100.7:443
	//   step 2: pid 41 execve "/bin/sh"
	// bad.toml:6:13: unknown syscall "exceve"
	// 	hint: `archangel syscalls --arch x86_64` lists valid names
}
