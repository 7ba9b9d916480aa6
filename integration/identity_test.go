package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEmulatedOpenUsesCurrentCredentials: a root target drops to nobody
// with setuid calls the profile allows in the kernel, then opens
// a root-only file that a [files] rule allows. The supervisor opens files
// on the target's behalf, so it must open with the credentials the target
// has now, not the ones it had at its first notification.
func TestEmulatedOpenUsesCurrentCredentials(t *testing.T) {
	requireNotify(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root: the target drops from root to nobody")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	secret := filepath.Join(dir, "root-only")
	if err := os.WriteFile(secret, []byte("ROOT-ONLY\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf(`import os
print(open(%[1]q).read().strip())
os.setgroups([]); os.setgid(65534); os.setuid(65534)
try:
    print(open(%[1]q).read().strip())
except PermissionError:
    print("refused after setuid")
`, secret)
	r := archangel(t, nil, "run", "--no-summary", "-p", testdata("files.toml"), "--", "/usr/bin/python3", "-c", script)
	wantCode(t, r, 0)
	if n := strings.Count(r.stdout, "ROOT-ONLY"); n != 1 {
		t.Fatalf("root-only file read %d times, want once (before setuid):\n%s\n%s", n, r.stdout, r.stderr)
	}
	wantContains(t, "stdout", r.stdout, "refused after setuid")

	// Supplementary groups: archangel (root) is in group 0, the target
	// dropped every group; a file only group 0 may read stays closed.
	groupOnly := filepath.Join(dir, "group-only")
	os.WriteFile(groupOnly, []byte("GROUP-ONLY\n"), 0o640)
	os.Chown(groupOnly, 65533, 0)
	// Capabilities: the target stays root but drops CAP_DAC_OVERRIDE and
	// CAP_DAC_READ_SEARCH from its effective set; a file of another user
	// stays closed, though archangel could open it.
	othersFile := filepath.Join(dir, "others")
	os.WriteFile(othersFile, []byte("OTHERS\n"), 0o600)
	os.Chown(othersFile, 65533, 65533)
	script = fmt.Sprintf(`import ctypes, os
def attempt(what, path):
    try:
        print(what, open(path).read().strip())
    except PermissionError:
        print(what, "refused")
class Hdr(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]
class Data(ctypes.Structure):
    _fields_ = [("eff", ctypes.c_uint32), ("perm", ctypes.c_uint32), ("inh", ctypes.c_uint32)]
libc = ctypes.CDLL(None, use_errno=True)
h = Hdr(0x20080522, 0); d = (Data * 2)()
assert libc.capget(ctypes.byref(h), d) == 0
d[0].eff &= ~((1 << 1) | (1 << 2))
assert libc.capset(ctypes.byref(h), d) == 0, ctypes.get_errno()
attempt("nocaps", %[2]q)
os.setgroups([]); os.setgid(65534); os.setuid(65534)
attempt("nogroups", %[1]q)
`, groupOnly, othersFile)
	r = archangel(t, nil, "run", "--no-summary", "-p", testdata("files.toml"), "--", "/usr/bin/python3", "-c", script)
	wantCode(t, r, 0)
	wantContains(t, "stdout", r.stdout, "nocaps refused")
	wantContains(t, "stdout", r.stdout, "nogroups refused")
}

// TestIdentityFollowsExec: env execs python under a profile that allows
// execve in the kernel; the opens python makes right after must carry
// python's executable, not env's, in the event log (rules, the learned
// overlay and the model key on it). archangel notifies every exec anyway
// (supervisor.IdentityCalls) to drop what it cached about the caller.
func TestIdentityFollowsExec(t *testing.T) {
	requireNotify(t)
	dir := t.TempDir()
	prof := filepath.Join(dir, "p.toml")
	os.WriteFile(prof, []byte(`[profile]
default = "allow"
[syscalls]
notify = ["@open"]
[files]
read = ["/**"]
[supervisor]
default = "deny"
`), 0o644)
	ev := filepath.Join(dir, "ev.jsonl")
	r := archangel(t, nil, "run", "--no-summary", "--events", ev, "-p", prof, "--",
		"/usr/bin/env", "A=1", "/usr/bin/python3", "-c", `open("/etc/hostname").read()`)
	wantCode(t, r, 0)
	python, err := filepath.EvalSymlinks("/usr/bin/python3")
	if err != nil {
		t.Skip("no /usr/bin/python3:", err)
	}
	found := false
	for _, e := range readEvents(t, ev) {
		if e["path"] != "/etc/hostname" {
			continue
		}
		found = true
		if e["exe"] != python {
			t.Errorf("open of /etc/hostname by python recorded with exe %v, want %s", e["exe"], python)
		}
	}
	if !found {
		t.Fatal("no event for python's open of /etc/hostname")
	}
}
