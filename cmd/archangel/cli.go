package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/archangel-sandbox/archangel/filter"
	"github.com/archangel-sandbox/archangel/profiles"
	"github.com/archangel-sandbox/archangel/supervisor"
	"github.com/archangel-sandbox/archangel/supervisor/rules"
)

// Globals are flags every command takes.
type Globals struct {
	LogLevel  string `help:"Diagnostics level on stderr: debug, info, warn, error." default:"warn" enum:"debug,info,warn,error"`
	LogFormat string `help:"Diagnostics format: text or json." default:"text" enum:"text,json"`
	Config    string `help:"Machine-wide configuration: [analyzer] budget and on_timeout for profiles that leave them unset (default: /etc/archangel/config.toml when it exists)." type:"path" placeholder:"FILE"`

	stdout, stderr io.Writer
}

type cli struct {
	Globals

	Run      runCmd      `cmd:"" help:"Run a command under a profile."`
	Learn    learnCmd    `cmd:"" help:"Run a command with everything recorded and nothing blocked, and write the profile it needs."`
	Profile  profileCmd  `cmd:"" help:"Check and compile profiles."`
	Syscalls syscallsCmd `cmd:"" help:"List the system calls and @groups profiles may name."`
	Analyzer analyzerCmd `cmd:"" help:"Offline work on the model tier: evaluate the sequence model on ADFA-LD."`
	Stats    statsCmd    `cmd:"" help:"Show a running supervisor's live figures."`
	Agent    agentCmd    `cmd:"" help:"Serve as the OCI seccomp agent: supervise containers whose runtime (runc, crun) sends their listener to a socket."`
}

// exitStatus carries a command's exit status through kong's error return.
type exitStatus struct {
	code int
	err  error // already reported when nil
}

func (e *exitStatus) Error() string {
	if e.err != nil {
		return e.err.Error()
	}
	return fmt.Sprintf("exit status %d", e.code)
}

type kongExit int

// run is all of main, minus os.Exit: tests call it with buffers.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (code int) {
	var c cli
	c.stdout, c.stderr = stdout, stderr
	parser, err := kong.New(&c,
		kong.Name("archangel"),
		kong.Description("Run commands under a seccomp-BPF filter generated from a profile, supervised through user notification."),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { panic(kongExit(code)) }),
		kong.UsageOnError(),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	)
	if err != nil {
		fmt.Fprintf(stderr, "archangel: %v\n", err)
		return supervisor.ExitFailure
	}
	defer func() {
		if r := recover(); r != nil {
			k, ok := r.(kongExit)
			if !ok {
				panic(r)
			}
			code = int(k)
			if code != 0 {
				code = supervisor.ExitFailure // usage errors are archangel's own
			}
		}
	}()
	kctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "archangel: %v\n", err)
		return supervisor.ExitFailure
	}
	logger := newLogger(&c.Globals, stderr)
	kctx.BindTo(ctx, (*context.Context)(nil))
	err = kctx.Run(&c.Globals, logger)
	if err == nil {
		return 0
	}
	var es *exitStatus
	if errors.As(err, &es) {
		if es.err != nil {
			fmt.Fprintf(stderr, "archangel: %v\n", es.err)
		}
		return es.code
	}
	fmt.Fprintf(stderr, "archangel: %v\n", err)
	return supervisor.ExitCode(err)
}

func newLogger(g *Globals, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(g.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if g.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

type runCmd struct {
	Profile string   `short:"p" help:"Profile name (built-in, /etc/archangel/profiles, ~/.config/archangel/profiles) or TOML file." default:"default"`
	Mode    string   `help:"Override the profile's mode: enforce (verdicts are carried out) or audit (decided and recorded, nothing blocked)." enum:"enforce,audit," default:""`
	Events  string   `help:"Append a JSON-lines record of every supervisor decision to FILE." type:"path" placeholder:"FILE"`
	Summary bool     `help:"Print the end-of-run summary on stderr." default:"true" negatable:""`
	Command []string `arg:"" passthrough:"partial" help:"Command and arguments (after --)."`

	ControlSocket string `help:"Serve live figures to 'archangel stats' on this unix socket (default: $XDG_RUNTIME_DIR/archangel/PID.sock, /run/archangel/PID.sock for root); none: no socket." placeholder:"PATH"`
	MetricsAddr   string `help:"Serve Prometheus metrics at http://ADDR/metrics; loopback unless ADDR names a host (a bare port means 127.0.0.1:PORT)." placeholder:"ADDR"`
	FailDegraded  bool   `help:"Do not start the command when a mechanism is degraded (no cgroup or watchdog, no pidfd_getfd, no Landlock for an exec allow-list, no SYNC_WAKE_UP, no syscall tap for a sequence model); exit 125 and say which."`
	learnedFlags  `embed:""`
	SeqModel      string `help:"Score each thread's system-call stream with the per-program sequence models in FILE (written by learn) and report threads that cross their threshold; reports only, in every mode. Default: beside a profile file (app.toml: app.seq) when it exists; none: off. Needs root (BPF tracepoint tap)." placeholder:"FILE"`
}

func (r *runCmd) Run(g *Globals, logger *slog.Logger) error {
	args := r.Command
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		return &exitStatus{code: supervisor.ExitFailure, err: errors.New("run: no command given (usage: archangel run [flags] -- COMMAND [ARGS...])")}
	}
	p, base, _, err := r.learnedFlags.load(r.Profile)
	if err != nil {
		return &exitStatus{code: supervisor.ExitFailure, err: err}
	}
	cfg, err := profiles.LoadConfig(g.Config)
	if err != nil {
		return &exitStatus{code: supervisor.ExitFailure, err: err}
	}
	p.ApplyConfig(cfg)
	mode := p.Mode
	if r.Mode != "" {
		if err := mode.UnmarshalText([]byte(r.Mode)); err != nil {
			return &exitStatus{code: supervisor.ExitFailure, err: err}
		}
	}
	prog, err := filter.Compile(p, filter.Options{Arch: filter.ArchAMD64, Mode: mode, NotifyAllowed: supervisor.IdentityCallsFor(p)})
	if err != nil {
		return &exitStatus{code: supervisor.ExitFailure, err: fmt.Errorf("compile profile %q: %w", p.Name, err)}
	}
	cmd := supervisor.Command(prog, p, args[0], args[1:]...)
	cmd.Mode = mode
	cmd.Logger = logger
	cmd.ForwardSignals = true
	cmd.FailDegraded = r.FailDegraded
	if cmd.SeqModels, err = seqModelsFor(r.SeqModel, r.Profile); err != nil {
		return &exitStatus{code: supervisor.ExitFailure, err: err}
	}
	cmd.ControlSocket = controlSocketFlag(r.ControlSocket)
	cmd.MetricsAddr = r.MetricsAddr
	if r.Events != "" {
		f, err := os.OpenFile(r.Events, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return &exitStatus{code: supervisor.ExitFailure, err: fmt.Errorf("open event log: %w", err)}
		}
		defer f.Close()
		cmd.Events = f
	}
	cmd.Overlay = r.learnedFlags.writer(r.Profile, p, base, logger)
	res, err := cmd.Run()
	closeOverlay(cmd.Overlay, g.stderr)
	if r.Summary && res.Stats != nil {
		res.Stats.Snapshot().WriteSummary(g.stderr)
	}
	if err != nil {
		return &exitStatus{code: supervisor.ExitCode(err), err: err}
	}
	if res.ExitCode != 0 {
		return &exitStatus{code: res.ExitCode}
	}
	return nil
}

type profileCmd struct {
	Check   profileCheckCmd   `cmd:"" help:"Validate a profile; errors name file:line:col. Lists the path, network and exec rules with their safety class."`
	Compile profileCompileCmd `cmd:"" help:"Show the BPF program the kernel will run."`
	Explain profileExplainCmd `cmd:"" help:"Say which rule decides a system call, and why."`
	Show    profileShowCmd    `cmd:"" help:"Print the resolved profile (extends applied, groups expanded) as TOML."`
	Diff    profileDiffCmd    `cmd:"" help:"Say per system call and per path/network entry what profile B decides differently from A."`
	Export  profileExportCmd  `cmd:"" help:"Export as OCI runtime-spec linux.seccomp JSON."`
	Import  profileImportCmd  `cmd:"" help:"Translate OCI or Docker/moby seccomp JSON into a profile."`
	Systemd profileSystemdCmd `cmd:"" help:"Write a systemd drop-in that runs a service under archangel."`
	Replay  profileReplayCmd  `cmd:"" help:"Say what a candidate profile would have done to a recorded run (--events log)."`
}

type profileCheckCmd struct {
	Profile      string `arg:"" help:"Profile name or TOML file."`
	learnedFlags `embed:""`
}

func (c *profileCheckCmd) Run(g *Globals) error {
	p, _, ov, err := c.learnedFlags.load(c.Profile)
	if err != nil {
		return &exitStatus{code: 1, err: err}
	}
	defer writeOverlaySummary(g.stdout, ov)
	prog, err := filter.Compile(p, filter.Options{Arch: filter.ArchAMD64, Mode: p.Mode, NotifyAllowed: supervisor.IdentityCallsFor(p)})
	if err != nil {
		return &exitStatus{code: 1, err: fmt.Errorf("compile profile %q: %w", p.Name, err)}
	}
	fmt.Fprintf(g.stdout, "%s: ok: profile %q (%s), %d rules, %d BPF instructions, sources %s\n",
		c.Profile, p.Name, p.Mode, len(p.Rules), len(prog.Insns), strings.Join(p.Sources, " <- "))
	set, err := compileRules(p)
	if err != nil {
		return &exitStatus{code: 1, err: err}
	}
	if set != nil {
		fmt.Fprintln(g.stdout, "path, network and exec rules (race-free: carried out by archangel or enforced by the kernel; advisory: checked, then the kernel re-reads the argument):")
		for _, ri := range set.Explain() {
			fmt.Fprintf(g.stdout, "  %s\n", ri)
		}
		for _, w := range set.Warnings() {
			fmt.Fprintf(g.stdout, "  warning: %s\n", w)
		}
		if len(p.Supervisor.Advisory) > 0 {
			fmt.Fprintf(g.stdout, "  advisory allows accepted for: %s\n", strings.Join(p.Supervisor.Advisory, ", "))
		}
	}
	return nil
}

// compileRules compiles a profile's [files]/[network]/[exec] rules with
// this process's directory and environment (nil when it has none).
func compileRules(p *profiles.Profile) (*rules.Set, error) {
	if len(p.Files.Read)+len(p.Files.Write)+len(p.Files.Exec)+len(p.Files.Deny)+
		len(p.Network.Connect)+len(p.Network.Bind)+len(p.Network.Deny)+len(p.Exec.Rules) == 0 {
		return nil, nil
	}
	cwd, _ := os.Getwd()
	env := rules.Env{CWD: cwd, HOME: os.Getenv("HOME"), TMPDIR: os.Getenv("TMPDIR")}
	if env.HOME == "" {
		env.HOME = "/nonexistent"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return rules.Compile(ctx, p, env, net.DefaultResolver)
}

type profileExplainCmd struct {
	Profile string   `arg:"" help:"Profile name or TOML file."`
	Syscall string   `arg:"" help:"System call name."`
	Args    []uint64 `arg:"" optional:"" help:"Scalar arguments (up to six)."`
	Path    string   `help:"The path the call names (open, exec, stat... family)." placeholder:"PATH"`
	Addr    string   `help:"The address the call names (connect, bind): IP:PORT or unix:/path." placeholder:"ADDR"`
	Mode    string   `help:"Explain for this mode instead of the profile's." enum:"enforce,audit," default:""`

	learnedFlags `embed:""`
}

func (c *profileExplainCmd) Run(g *Globals) error {
	p, _, _, err := c.learnedFlags.load(c.Profile)
	if err != nil {
		return &exitStatus{code: 1, err: err}
	}
	nr, ok := profiles.SyscallNr(c.Syscall)
	if !ok {
		return &exitStatus{code: 1, err: fmt.Errorf("unknown syscall %q\n\thint: `archangel syscalls` lists valid names", c.Syscall)}
	}
	mode := p.Mode
	if c.Mode != "" {
		_ = mode.UnmarshalText([]byte(c.Mode))
	}
	d := filter.Data{Nr: int32(nr), Arch: filter.AuditArchX8664}
	for i, a := range c.Args {
		if i < 6 {
			d.Args[i] = a
		}
	}
	v := filter.NewEvaluator(p).Eval(filter.Options{Arch: filter.ArchAMD64}, d)
	fmt.Fprintf(g.stdout, "kernel: %s %s", c.Syscall, v.Action)
	if v.Action == profiles.ActionErrno {
		fmt.Fprintf(g.stdout, " %s", v.Errno)
	}
	fmt.Fprintf(g.stdout, " by %s (%s)\n", v.Source, v.Pos)
	if mode == profiles.ModeAudit && (v.Action == profiles.ActionErrno || v.Action == profiles.ActionKill) {
		fmt.Fprintln(g.stdout, "audit mode: notified, recorded as \"would "+v.Action.String()+"\", and run")
	}
	if v.Action != profiles.ActionNotify {
		return nil
	}
	if b := supervisor.BuiltinRule(nr); b != "" {
		fmt.Fprintf(g.stdout, "supervisor: %s\n", b)
		return nil
	}
	if c.Path == "" && c.Addr == "" {
		fmt.Fprintf(g.stdout, "supervisor: decides; without --path or --addr, [supervisor] default = %s\n", p.Supervisor.Default)
		return nil
	}
	set, err := compileRules(p)
	if err != nil {
		return &exitStatus{code: 1, err: err}
	}
	if set == nil {
		fmt.Fprintf(g.stdout, "supervisor: no [files]/[network]/[exec] rules; [supervisor] default = %s\n", p.Supervisor.Default)
		return nil
	}
	call, err := supervisor.ExplainCall(c.Syscall, d.Args, c.Path, c.Addr)
	if err != nil {
		return &exitStatus{code: 1, err: err}
	}
	rv := set.Decide(&call, nil)
	if !rv.Matched {
		fmt.Fprintf(g.stdout, "supervisor: no rule matches %s %s; [supervisor] default = %s\n", call.Kind, c.Path+c.Addr, p.Supervisor.Default)
		return nil
	}
	fmt.Fprintf(g.stdout, "supervisor: %s by %s, %s", rv.Action, rv.Rule, rv.Safety)
	if rv.Note != "" {
		fmt.Fprintf(g.stdout, " (%s)", rv.Note)
	}
	fmt.Fprintln(g.stdout)
	return nil
}

type profileCompileCmd struct {
	Profile string `arg:"" help:"Profile name or TOML file."`
	Format  string `help:"Output: text (disassembly) or bpf (raw struct sock_filter array)." enum:"text,bpf" default:"text"`
	Mode    string `help:"Compile for this mode instead of the profile's." enum:"enforce,audit," default:""`

	learnedFlags `embed:""`
}

func (c *profileCompileCmd) Run(g *Globals) error {
	p, _, _, err := c.learnedFlags.load(c.Profile)
	if err != nil {
		return &exitStatus{code: 1, err: err}
	}
	mode := p.Mode
	if c.Mode != "" {
		_ = mode.UnmarshalText([]byte(c.Mode))
	}
	prog, err := filter.Compile(p, filter.Options{Arch: filter.ArchAMD64, Mode: mode, NotifyAllowed: supervisor.IdentityCallsFor(p)})
	if err != nil {
		return &exitStatus{code: 1, err: fmt.Errorf("compile profile %q: %w", p.Name, err)}
	}
	if c.Format == "bpf" {
		_, err := g.stdout.Write(prog.Bytes())
		return err
	}
	return prog.WriteText(g.stdout)
}

type syscallsCmd struct {
	Group  string `help:"List the members of one @group." placeholder:"@NAME"`
	Groups bool   `help:"List the @groups."`
}

func (c *syscallsCmd) Run(g *Globals) error {
	switch {
	case c.Group != "":
		name := c.Group
		if !strings.HasPrefix(name, "@") {
			name = "@" + name
		}
		members, ok := profiles.Group(name)
		if !ok {
			return &exitStatus{code: 1, err: fmt.Errorf("unknown group %q\n\thint: `archangel syscalls --groups` lists them", name)}
		}
		for _, m := range members {
			nr, _ := profiles.SyscallNr(m)
			fmt.Fprintf(g.stdout, "%4d %s\n", nr, m)
		}
	case c.Groups:
		for _, name := range profiles.GroupNames() {
			members, _ := profiles.Group(name)
			fmt.Fprintf(g.stdout, "%-20s %d\n", name, len(members))
		}
	default:
		for _, name := range profiles.SyscallNames() {
			nr, _ := profiles.SyscallNr(name)
			fmt.Fprintf(g.stdout, "%4d %s\n", nr, name)
		}
	}
	return nil
}

// seqModelsFor loads the sequence models a run scores with: flag names
// the file ("none": off); without it, the .seq file beside a profile
// given as a file, when there is one.
func seqModelsFor(flag, profile string) (*supervisor.SeqModels, error) {
	switch {
	case flag == "none":
		return nil, nil
	case flag != "":
		return supervisor.LoadSeqModels(flag)
	case !strings.HasSuffix(profile, ".toml"):
		return nil, nil
	}
	path := supervisor.SeqModelFile(profile)
	if _, err := os.Stat(path); err != nil {
		return nil, nil
	}
	return supervisor.LoadSeqModels(path)
}
