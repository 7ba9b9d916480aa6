package rules_test

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/archangel-sandbox/archangel/analyzer"
	"github.com/archangel-sandbox/archangel/profiles"
	"github.com/archangel-sandbox/archangel/supervisor/rules"
)

func ExampleCompile() {
	p, err := profiles.Parse("web.toml", []byte(`[profile]
default = "allow"

[files]
read  = ["/usr/**", "${HOME}/**"]
write = ["${CWD}/**"]
deny  = ["${HOME}/.ssh/**"]

[network]
connect = ["127.0.0.0/8:*"]
deny    = ["*"]
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	env := rules.Env{CWD: "/home/u/src", HOME: "/home/u"}
	s, err := rules.Compile(context.Background(), p, env, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, c := range []*analyzer.Call{
		{Kind: analyzer.KindOpen, Access: analyzer.AccessRead, Path: "/usr/lib/os-release"},
		{Kind: analyzer.KindOpen, Access: analyzer.AccessRead, Path: "/home/u/.ssh/id_ed25519"},
		{Kind: analyzer.KindOpen, Access: analyzer.AccessRead | analyzer.AccessWrite, Path: "/usr/lib/os-release"},
		{Kind: analyzer.KindDelete, Access: analyzer.AccessWrite, Path: "/home/u/src/old.txt"},
		{Kind: analyzer.KindOpen, Access: analyzer.AccessRead, Path: "/srv/data"},
		{Kind: analyzer.KindConnect, Name: "connect", Addr: &analyzer.SockAddr{Family: 2, Addr: netip.MustParseAddrPort("127.0.0.1:8080")}},
		{Kind: analyzer.KindConnect, Name: "connect", Addr: &analyzer.SockAddr{Family: 2, Addr: netip.MustParseAddrPort("1.1.1.1:443")}},
	} {
		fmt.Println(s.Decide(c, nil))
	}
	// Output:
	// allow by web.toml:5:10 files.read[0] "/usr/**" (race-free)
	// deny EACCES by web.toml:7:10 files.deny[0] "${HOME}/.ssh/**" (race-free)
	// deny EACCES by web.toml:5:10 files.read[0] "/usr/**" (race-free): no files.write rule matches the path; denied
	// allow by web.toml:6:10 files.write[0] "${CWD}/**" (advisory)
	// no rule
	// allow by web.toml:10:12 network.connect[0] "127.0.0.0/8:*" (race-free)
	// deny EACCES by web.toml:11:12 network.deny[0] "*" (race-free)
}

func ExampleSet_LandlockPlan() {
	p, err := profiles.Parse("ci.toml", []byte(`[profile]
default = "allow"

[supervisor]
default = "deny"

[files]
read  = ["/usr/**", "/etc/hosts"]
write = ["/tmp/**"]
exec  = ["/usr/bin/**"]
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	s, _ := rules.Compile(context.Background(), p, rules.Env{}, nil)
	plan, ok := s.LandlockPlan()
	fmt.Println(ok, plan.Handled == rules.FSRead|rules.FSWrite|rules.FSExec)
	for _, r := range plan.Rules {
		fmt.Println(r.Path, r.Access, "exact:", r.Exact)
	}
	// Output:
	// true true
	// /etc/hosts read_file|read_dir exact: read_file|read_dir
	// /tmp write_file|remove_dir|remove_file|make_char|make_dir|make_reg|make_sock|make_fifo|make_block|make_sym|refer|truncate exact: none
	// /usr read_file|read_dir exact: none
	// /usr/bin execute exact: none
}
