package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/archangel-sandbox/archangel/profiles"
)

type profileShowCmd struct {
	Profile      string `arg:"" help:"Profile name or TOML file."`
	learnedFlags `embed:""`
}

func (c *profileShowCmd) Run(g *Globals) error {
	p, _, _, err := c.learnedFlags.load(c.Profile)
	if err != nil {
		return &exitStatus{code: 1, err: err}
	}
	return p.WriteTOML(g.stdout)
}

type profileDiffCmd struct {
	A string `arg:"" help:"Profile name or TOML file (the base)."`
	B string `arg:"" help:"Profile name or TOML file compared with A."`
}

func (c *profileDiffCmd) Run(g *Globals) error {
	a, err := profiles.Load(c.A)
	if err != nil {
		return &exitStatus{code: 1, err: err}
	}
	b, err := profiles.Load(c.B)
	if err != nil {
		return &exitStatus{code: 1, err: err}
	}
	changes := profiles.Diff(a, b)
	if len(changes) == 0 {
		fmt.Fprintf(g.stdout, "%s and %s decide alike\n", c.A, c.B)
		return nil
	}
	for _, ch := range changes {
		fmt.Fprintln(g.stdout, ch)
	}
	return nil
}

type profileExportCmd struct {
	Profile          string `arg:"" help:"Profile name or TOML file."`
	Format           string `help:"Output format: oci (runtime-spec linux.seccomp JSON)." enum:"oci" default:"oci"`
	ListenerPath     string `help:"Seccomp agent socket for SCMP_ACT_NOTIFY (runc's listenerPath)." placeholder:"PATH"`
	ListenerMetadata string `help:"Opaque data runc passes to the seccomp agent (listenerMetadata)." placeholder:"DATA"`
}

func (c *profileExportCmd) Run(g *Globals) error {
	p, err := profiles.Load(c.Profile)
	if err != nil {
		return &exitStatus{code: 1, err: err}
	}
	sc, warnings, err := profiles.ExportOCI(p, profiles.OCIOptions{ListenerPath: c.ListenerPath, ListenerMetadata: c.ListenerMetadata})
	for _, w := range warnings {
		fmt.Fprintf(g.stderr, "archangel: warning: %s\n", w)
	}
	if err != nil {
		return &exitStatus{code: 1, err: err}
	}
	enc := json.NewEncoder(g.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(sc)
}

type profileImportCmd struct {
	File   string   `arg:"" help:"OCI linux.seccomp or Docker/moby seccomp JSON file." type:"existingfile"`
	Out    string   `help:"Write the profile to FILE instead of stdout." placeholder:"FILE"`
	Name   string   `help:"Profile name (default: the JSON file's base name)."`
	Caps   []string `help:"The container's capabilities, for moby includes/excludes caps (default: Docker's default set; none: no capabilities)." placeholder:"CAP_..."`
	Kernel string   `help:"Kernel version for moby minKernel." default:"6.18" placeholder:"MAJOR.MINOR"`
}

func (c *profileImportCmd) Run(g *Globals) error {
	data, err := os.ReadFile(c.File)
	if err != nil {
		return &exitStatus{code: 1, err: fmt.Errorf("import: %w", err)}
	}
	caps := c.Caps
	if len(caps) == 1 && caps[0] == "none" {
		caps = []string{}
	}
	for i, cp := range caps {
		caps[i] = strings.ToUpper(cp)
		if !strings.HasPrefix(caps[i], "CAP_") {
			caps[i] = "CAP_" + caps[i]
		}
	}
	im, err := profiles.ImportOCI(data, profiles.ImportOptions{File: c.File, Name: c.Name, Caps: caps, Kernel: c.Kernel})
	if err != nil {
		return &exitStatus{code: 1, err: err}
	}
	for _, s := range im.Stricter {
		fmt.Fprintf(g.stderr, "archangel: stricter than the JSON: %s\n", s)
	}
	for _, s := range im.Notes {
		fmt.Fprintf(g.stderr, "archangel: note: %s\n", s)
	}
	if len(im.Skipped) > 0 {
		fmt.Fprintf(g.stderr, "archangel: skipped %d names unknown on x86-64 (listed in the profile's header)\n", len(im.Skipped))
	}
	if c.Out == "" {
		_, err := g.stdout.Write(im.TOML)
		return err
	}
	if err := os.WriteFile(c.Out, im.TOML, 0o644); err != nil {
		return &exitStatus{code: 1, err: fmt.Errorf("import: %w", err)}
	}
	return nil
}

type profileSystemdCmd struct {
	Profile   string `arg:"" help:"Profile name or TOML file."`
	Unit      string `help:"The unit the drop-in is for (named in its header)." placeholder:"NAME"`
	Exec      string `help:"The service's command line, run under archangel." required:"" placeholder:"CMD"`
	Archangel string `help:"Path of the archangel binary in ExecStart (default: this executable)." placeholder:"PATH"`
}

// supervisorSyscalls are calls archangel itself makes beyond systemd's
// @system-service: the unit's filter applies to the supervisor too.
var supervisorSyscalls = []string{"@system-service", "seccomp", "pidfd_open", "pidfd_getfd", "pidfd_send_signal",
	"process_vm_readv", "process_vm_writev"}

func (c *profileSystemdCmd) Run(g *Globals) error {
	p, err := profiles.Load(c.Profile)
	if err != nil {
		return &exitStatus{code: 1, err: err}
	}
	bin := c.Archangel
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
			return &exitStatus{code: 1, err: fmt.Errorf("systemd: find archangel's path: %w (use --archangel)", err)}
		}
	}
	ref := c.Profile
	if strings.Contains(ref, "/") || strings.HasSuffix(ref, ".toml") {
		if abs, err := filepath.Abs(ref); err == nil {
			ref = abs
		}
	}
	return writeSystemd(g.stdout, p, systemdUnit{unit: c.Unit, exec: c.Exec, bin: bin, profile: ref})
}

type systemdUnit struct{ unit, exec, bin, profile string }

// writeSystemd writes a drop-in that runs the service under archangel and
// adds systemd's own coarse filter as a second layer. Seccomp filters
// stack and the strictest verdict wins (for equal ones, the later filter's
// errno: archangel's), so systemd's list must let through everything
// archangel may allow, log or notify, plus what the supervisor calls.
func writeSystemd(w io.Writer, p *profiles.Profile, u systemdUnit) error {
	if u.exec == "" {
		return &exitStatus{code: 1, err: errors.New("systemd: --exec is required: the command the service runs")}
	}
	unit := u.unit
	if unit == "" {
		unit = "UNIT.service"
	}
	if !strings.Contains(unit, ".") {
		unit += ".service"
	}
	fmt.Fprintf(w, "# /etc/systemd/system/%s.d/archangel.conf\n", unit)
	fmt.Fprintf(w, "# Generated by `archangel profile systemd` from profile %q (%s).\n", p.Name, strings.Join(p.Sources, " <- "))
	fmt.Fprintln(w, "# archangel's filter decides every call; systemd's SystemCallFilter= is a coarse")
	fmt.Fprintln(w, "# outer layer (no argument or path rules), so it lets through every call the")
	fmt.Fprintln(w, "# profile may allow, log or notify, and what archangel's supervisor needs.")
	fmt.Fprintln(w, "[Service]")
	fmt.Fprintln(w, "ExecStart=")
	fmt.Fprintf(w, "ExecStart=%s run --profile %s -- %s\n", u.bin, systemdQuote(u.profile), u.exec)
	fmt.Fprintln(w, "NoNewPrivileges=yes")
	fmt.Fprintln(w, "SystemCallArchitectures=native")

	def, defErrno := p.Default, p.DefaultErrno
	passes := func(sp profiles.SyscallPolicy) bool {
		if sp.Action != profiles.ActionErrno && sp.Action != profiles.ActionKill {
			return true
		}
		for _, c := range sp.Conds {
			if c.Action != profiles.ActionErrno && c.Action != profiles.ActionKill {
				return true
			}
		}
		return false
	}
	var names []string
	if def == profiles.ActionErrno || def == profiles.ActionKill {
		names = slices.Clone(supervisorSyscalls)
		for _, n := range profiles.SyscallNames() {
			if passes(p.Policy(n)) {
				names = append(names, n)
			}
		}
		fmt.Fprintln(w, "# Allow list: what the profile does not deny or kill outright.")
		writeList(w, "SystemCallFilter=", names)
		if defErrno == 0 {
			defErrno = profiles.DefaultErrno
		}
		fmt.Fprintf(w, "SystemCallErrorNumber=%s\n", defErrno)
	} else {
		var need []string
		for _, s := range supervisorSyscalls {
			if m, ok := profiles.Group(s); ok {
				need = append(need, m...)
			} else {
				need = append(need, s)
			}
		}
		for _, n := range profiles.SyscallNames() {
			if sp := p.Policy(n); !passes(sp) && !slices.Contains(need, n) {
				names = append(names, n)
			}
		}
		fmt.Fprintln(w, "# Deny list: what the profile denies or kills outright (but for what the supervisor calls).")
		if len(names) > 0 {
			writeList(w, "SystemCallFilter=~", names)
			fmt.Fprintf(w, "SystemCallErrorNumber=%s\n", profiles.DefaultErrno)
		}
	}
	if len(p.Network.Connect)+len(p.Network.Bind) == 0 {
		fmt.Fprintln(w, "# [network] allows nothing: local sockets only (archangel's control socket is AF_UNIX).")
		fmt.Fprintln(w, "RestrictAddressFamilies=AF_UNIX")
	} else {
		fmt.Fprintln(w, "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6")
	}
	return nil
}

// writeList writes names over several lines of key (systemd merges them).
func writeList(w io.Writer, key string, names []string) {
	line := ""
	for _, n := range names {
		if line != "" && len(key)+len(line)+1+len(n) > 100 {
			fmt.Fprintf(w, "%s%s\n", key, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += n
	}
	if line != "" {
		fmt.Fprintf(w, "%s%s\n", key, line)
	}
}

// systemdQuote quotes a word for an ExecStart= line when it needs it.
func systemdQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\"'\\$%;") {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `$$`, `%`, `%%`)
	return `"` + r.Replace(s) + `"`
}
