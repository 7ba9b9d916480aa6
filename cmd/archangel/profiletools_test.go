package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/archangel-sandbox/archangel/filter"
	"github.com/archangel-sandbox/archangel/profiles"
)

type runner interface{ Run(g *Globals) error }

func runTool(t *testing.T, c runner) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := c.Run(&Globals{stdout: &out, stderr: &errb})
	return out.String(), errb.String(), err
}

func TestProfileShowCmd(t *testing.T) {
	out, _, err := runTool(t, &profileShowCmd{Profile: "audit"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`name = "audit"`, `mode = "audit"`, "[[syscalls.rule]]", `"execve"`, "builtin:default.toml:", "[files]", "[supervisor]", "[analyzer]"} {
		if !strings.Contains(out, want) {
			t.Errorf("show audit: no %q in\n%s", want, out)
		}
	}
	for _, l := range strings.Split(out, "\n") {
		if l, _, _ = strings.Cut(l, "#"); strings.HasPrefix(l, "extends") || strings.Contains(l, `"@`) {
			t.Errorf("show audit: extends or a group left in the output: %q", l)
		}
	}
}

func TestProfileDiffCmd(t *testing.T) {
	dir := t.TempDir()
	web := filepath.Join(dir, "web.toml")
	os.WriteFile(web, []byte("[profile]\nextends = [\"default\"]\n\n[syscalls]\ndeny = [\"ptrace\"]\n\n[network]\nconnect = [\"127.0.0.1:80\"]\n"), 0o644)
	out, _, err := runTool(t, &profileDiffCmd{A: "default", B: web})
	if err != nil {
		t.Fatal(err)
	}
	want := "ptrace: notify → deny EPERM (stricter; B " + web + ":5:9 syscalls.deny)\nnetwork.connect 127.0.0.1:80: added (B " + web + ":8:12)\n"
	if out != want {
		t.Errorf("diff:\n got %q\nwant %q", out, want)
	}
	out, _, _ = runTool(t, &profileDiffCmd{A: "default", B: "default"})
	if !strings.Contains(out, "decide alike") {
		t.Errorf("diff of a profile with itself: %q", out)
	}
}

func TestProfileExportCmd(t *testing.T) {
	out, errOut, err := runTool(t, &profileExportCmd{Profile: "strict", Format: "oci", ListenerPath: "/run/archangel/agent.sock", ListenerMetadata: "job=1"})
	if err != nil {
		t.Fatal(err)
	}
	var sc struct {
		DefaultAction    string
		DefaultErrnoRet  int
		Architectures    []string
		ListenerPath     string
		ListenerMetadata string
		Syscalls         []struct {
			Names  []string
			Action string
		}
	}
	if err := json.Unmarshal([]byte(out), &sc); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if sc.DefaultAction != "SCMP_ACT_ERRNO" || sc.DefaultErrnoRet != 1 || len(sc.Architectures) != 1 || sc.Architectures[0] != "SCMP_ARCH_X86_64" ||
		sc.ListenerPath != "/run/archangel/agent.sock" || sc.ListenerMetadata != "job=1" || errOut != "" {
		t.Errorf("export strict: %+v (stderr %q)", sc, errOut)
	}
	notify := false
	for _, s := range sc.Syscalls {
		if s.Action == "SCMP_ACT_NOTIFY" && strings.Join(s.Names, ",") == "execve,execveat" {
			notify = true
		}
	}
	if !notify {
		t.Errorf("export strict: no SCMP_ACT_NOTIFY entry for execve, execveat: %s", out)
	}
	_, _, err = runTool(t, &profileExportCmd{Profile: "strict", Format: "oci"})
	if err == nil || !strings.Contains(err.Error(), "--listener-path") {
		t.Errorf("export without a listener: %v", err)
	}
}

func TestProfileImportCmd(t *testing.T) {
	dir := t.TempDir()
	js := filepath.Join(dir, "small.json")
	os.WriteFile(js, []byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
		{"names":["ptrace","not_a_syscall"],"action":"SCMP_ACT_ERRNO","errnoRet":1},
		{"names":["open"],"action":"SCMP_ACT_ERRNO"}]}`), 0o644)
	out := filepath.Join(dir, "small.toml")
	_, errOut, err := runTool(t, &profileImportCmd{File: js, Out: out, Kernel: "6.18"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errOut, "stricter than the JSON: openat") || !strings.Contains(errOut, "skipped 1 names") {
		t.Errorf("stderr: %q", errOut)
	}
	p, err := profiles.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]profiles.Action{"ptrace": profiles.ActionErrno, "open": profiles.ActionErrno,
		"openat": profiles.ActionErrno, "read": profiles.ActionAllow, "io_uring_setup": profiles.ActionAllow} {
		nr, _ := profiles.SyscallNr(name)
		if v := filter.Eval(p, filter.Options{Arch: filter.ArchAMD64}, filter.Data{Nr: int32(nr), Arch: filter.AuditArchX8664}); v.Action != want {
			t.Errorf("%s: %s, want %s", name, v.Action, want)
		}
	}

	bad := filepath.Join(dir, "trace.json")
	os.WriteFile(bad, []byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["ptrace"],"action":"SCMP_ACT_TRACE"}]}`), 0o644)
	if _, _, err := runTool(t, &profileImportCmd{File: bad, Kernel: "6.18"}); err == nil || !strings.Contains(err.Error(), "syscalls[0].action: action SCMP_ACT_TRACE is not supported") {
		t.Errorf("import SCMP_ACT_TRACE: %v", err)
	}
}

func TestProfileSystemdCmd(t *testing.T) {
	for _, tc := range []struct {
		profile string
		want    []string
		not     []string
	}{
		{"strict", []string{"SystemCallFilter=@system-service seccomp", " execve ", "SystemCallErrorNumber=EPERM", "RestrictAddressFamilies=AF_UNIX\n"}, []string{"SystemCallFilter=~", " mount "}},
		{"default", []string{"SystemCallFilter=@system-service", " connect ", " ptrace ", "SystemCallErrorNumber=ENOSYS"}, []string{" mount ", " bpf "}},
	} {
		t.Run(tc.profile, func(t *testing.T) {
			out, _, err := runTool(t, &profileSystemdCmd{Profile: tc.profile, Unit: "web", Exec: "/usr/bin/web --port 80", Archangel: "/usr/bin/archangel"})
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(out, "\n")
			var body []string
			for _, l := range lines {
				if l != "" && !strings.HasPrefix(l, "#") {
					body = append(body, l)
				}
			}
			if lines[0] != "# /etc/systemd/system/web.service.d/archangel.conf" || body[0] != "[Service]" || body[1] != "ExecStart=" ||
				body[2] != "ExecStart=/usr/bin/archangel run --profile "+tc.profile+" -- /usr/bin/web --port 80" ||
				!strings.Contains(out, "\nNoNewPrivileges=yes\n") || !strings.Contains(out, "\nSystemCallArchitectures=native\n") {
				t.Errorf("shape:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("no %q in\n%s", w, out)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(out, w) {
					t.Errorf("%q in\n%s", w, out)
				}
			}
		})
	}
	dir := t.TempDir()
	web := filepath.Join(dir, "web.toml")
	os.WriteFile(web, []byte("[profile]\ndefault = \"allow\"\n[syscalls]\ndeny = [\"mount\"]\n[network]\nconnect = [\"*\"]\n"), 0o644)
	out, _, err := runTool(t, &profileSystemdCmd{Profile: web, Exec: "/bin/true", Archangel: "/a"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "SystemCallFilter=~mount") || !strings.Contains(out, "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6") ||
		!strings.Contains(out, "--profile "+web+" --") {
		t.Errorf("allow-by-default profile:\n%s", out)
	}
}
