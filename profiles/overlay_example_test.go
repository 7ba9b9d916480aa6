package profiles_test

import (
	"fmt"

	"github.com/archangel-sandbox/archangel/profiles"
)

func ExampleApplyOverlay() {
	p, err := profiles.Parse("app.toml", []byte(`
[profile]
default = "allow"
[syscalls]
notify = ["personality", "@open"]
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	ov, err := profiles.ParseOverlay("app.learned.toml", []byte(`
[overlay]
profile = "app"

[[rule]]
syscall = "personality"
verdict = "deny"
args = [{ index = 0, value = 0xffffffff }]
count = 12
runs = 2
last_seen = "2026-11-26T01:02:03Z"

[[rule]]
syscall = "openat"
verdict = "allow"
exe = "/usr/bin/cat"
path = "/srv/report.txt"
access = "read"
count = 3
runs = 2
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	learned, err := profiles.ApplyOverlay(p, ov)
	if err != nil {
		fmt.Println(err)
		return
	}
	sp := learned.Policy("personality")
	c := sp.Conds[0]
	fmt.Printf("personality: %s if arg0 == %#x (%s: %s), otherwise %s\n", c.Action, c.Args[0].Value, c.Source, c.Learned.Summary(), sp.Action)
	for _, v := range learned.Learned {
		fmt.Printf("supervisor: %s %s\n", v.Action, v.What())
	}
	// Output:
	// personality: deny if arg0 == 0xffffffff (learned.rule[0]: 12 verdicts in 2 runs from the analyzer, 2026-11-26), otherwise notify
	// supervisor: allow openat "/srv/report.txt" (read) by /usr/bin/cat
}
