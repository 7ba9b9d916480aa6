package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), code
}

func TestProfileCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(good, []byte("[profile]\nextends = [\"default\"]\n[syscalls]\ndeny = [\"ptrace\"]\n"), 0o644)
	os.WriteFile(bad, []byte("[profile]\ndefault = \"allow\"\n[syscalls]\nallow = [\"opn\"]\n"), 0o644)

	out, _, code := runCLI(t, "profile", "check", good)
	if code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("check good: code %d, out %q", code, out)
	}
	_, errOut, code := runCLI(t, "profile", "check", bad)
	if code != 1 || !strings.Contains(errOut, "bad.toml:4:") || !strings.Contains(errOut, `did you mean "open"`) {
		t.Fatalf("check bad: code %d, stderr %q", code, errOut)
	}
	for _, name := range []string{"default", "strict", "audit"} {
		if _, e, code := runCLI(t, "profile", "check", name); code != 0 {
			t.Errorf("built-in %s: %s", name, e)
		}
	}
}

func TestProfileCompile(t *testing.T) {
	out, _, code := runCLI(t, "profile", "compile", "default")
	if code != 0 || !strings.Contains(out, "ld    [4]  ; arch") || !strings.Contains(out, "ret   #0x7fc00000  ; notify") {
		t.Fatalf("compile text: code %d\n%s", code, out)
	}
	raw, _, code := runCLI(t, "profile", "compile", "default", "--format", "bpf")
	if code != 0 || len(raw)%8 != 0 || len(raw) == 0 {
		t.Fatalf("compile bpf: code %d, %d bytes", code, len(raw))
	}
}

func TestSyscalls(t *testing.T) {
	out, _, code := runCLI(t, "syscalls")
	if code != 0 || !strings.Contains(out, "  59 execve") {
		t.Fatalf("syscalls: code %d", code)
	}
	out, _, code = runCLI(t, "syscalls", "--group", "@mount")
	if code != 0 || !strings.Contains(out, "mount") || strings.Contains(out, "execve") {
		t.Fatalf("syscalls --group @mount: code %d\n%s", code, out)
	}
	_, errOut, code := runCLI(t, "syscalls", "--group", "@mnt")
	if code != 1 || !strings.Contains(errOut, "unknown group") {
		t.Fatalf("unknown group: code %d %q", code, errOut)
	}
}

func TestUsageErrorsAre125(t *testing.T) {
	for _, args := range [][]string{{"bogus"}, {"run", "--nope", "--", "true"}, {"run", "--"}, {"profile", "compile", "default", "--format", "elf"}} {
		if _, _, code := runCLI(t, args...); code != 125 {
			t.Errorf("%v: exit %d, want 125", args, code)
		}
	}
}

func TestProfileExplain(t *testing.T) {
	dir := t.TempDir()
	prof := filepath.Join(dir, "p.toml")
	os.WriteFile(prof, []byte(`[profile]
default = "allow"
[syscalls]
notify = ["@open"]
deny = ["mount"]
[files]
read = ["/usr/**"]
deny = ["/usr/secret/**"]
[supervisor]
default = "deny"
`), 0o644)
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"mount"}, []string{"kernel: mount deny EPERM by syscalls.deny", "p.toml:5:"}},
		{[]string{"openat", "0", "0", "0", "--path", "/usr/secret/x"}, []string{"kernel: openat notify", "supervisor: deny by", "files.deny[0]", "race-free"}},
		{[]string{"openat", "0", "0", "0", "--path", "/usr/lib/x"}, []string{"supervisor: allow by", "files.read[0]"}},
		{[]string{"openat", "0", "0", "0", "--path", "/opt/x"}, []string{"no rule matches", "default = deny"}},
		{[]string{"getpid"}, []string{"kernel: getpid allow by profile.default"}},
		{[]string{"mount", "--mode", "audit"}, []string{"audit mode: notified"}},
	}
	for _, tc := range tests {
		out, errOut, code := runCLI(t, append([]string{"profile", "explain", prof}, tc.args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, code, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v: output lacks %q:\n%s", tc.args, w, out)
			}
		}
	}
	out, _, _ := runCLI(t, "profile", "explain", "default", "ptrace", "16", "1")
	if !strings.Contains(out, "descends from the caller") {
		t.Errorf("ptrace under default: %s", out)
	}
	out, _, _ = runCLI(t, "profile", "check", prof)
	if !strings.Contains(out, `files.deny[0] "/usr/secret/**" deny EACCES race-free`) {
		t.Errorf("check does not list rules with their safety class:\n%s", out)
	}
}

func TestProfileReplay(t *testing.T) {
	dir := t.TempDir()
	prof := filepath.Join(dir, "cand.toml")
	os.WriteFile(prof, []byte(`[profile]
default = "allow"
[syscalls]
notify = ["@open"]
deny = ["ptrace"]
[files]
read = ["/usr/**"]
[supervisor]
default = "deny"
`), 0o644)
	ev := filepath.Join(dir, "ev.jsonl")
	os.WriteFile(ev, []byte(`{"syscall":"openat","nr":257,"args":[4294967196,0,0,0,0,0],"verdict":"allow","path":"/usr/lib/os-release","comm":"cat"}
{"syscall":"openat","nr":257,"args":[4294967196,0,0,0,0,0],"verdict":"allow","path":"/opt/data","comm":"cat"}
{"syscall":"ptrace","nr":101,"args":[16,1,0,0,0,0],"verdict":"allow","comm":"gdb"}
{"syscall":"getppid","nr":110,"args":[0,0,0,0,0,0],"verdict":"deny","comm":"x"}
`), 0o644)
	out, errOut, code := runCLI(t, "profile", "replay", ev, "-p", prof)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, w := range []string{"replayed 4 recorded calls", "3 would change",
		"would refuse (it ran) x1: openat /opt/data by cat: deny by [supervisor] default",
		"would refuse (it ran) x1: ptrace by gdb: deny by syscalls.deny",
		"would allow (it was refused) x1: getppid by x: allow by profile.default"} {
		if !strings.Contains(out, w) {
			t.Errorf("replay output lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "os-release") {
		t.Errorf("an allowed read was reported as changing:\n%s", out)
	}
}
