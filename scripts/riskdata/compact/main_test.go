package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCompactLabels replays a hand-written event log of a hostile
// workload: only the window's events survive, labelled, minus loading
// noise, with the context reconstructed and the paths made stable.
func TestCompactLabels(t *testing.T) {
	dir := t.TempDir()
	work := "/tmp/archangel-riskdata.AbC123"
	log := strings.Join([]string{
		// the launcher execs the program (parent 10 is the supervisor)
		`{"pid":100,"ppid":10,"syscall":"execve","nr":59,"kind":"exec","path":"` + work + `/bin/x","argv":["x"],"exe":"` + work + `/archangel"}`,
		`{"pid":100,"ppid":10,"syscall":"openat","nr":257,"kind":"open","path":"/etc/hostname","exe":"` + work + `/bin/x"}`,
		`{"pid":100,"ppid":10,"syscall":"newfstatat","nr":262,"kind":"stat","path":"/archangel-riskdata/begin/revshell","exe":"` + work + `/bin/x"}`,
		`{"pid":100,"ppid":10,"syscall":"connect","nr":42,"kind":"connect","addr":"127.0.0.1:4444","exe":"` + work + `/bin/x"}`,
		`{"pid":100,"syscall":"dup2","nr":33,"args":[3,0,0,0,0,0],"exe":"` + work + `/bin/x"}`,
		`{"pid":100,"syscall":"mmap","nr":9,"args":[0,4096,3,34,0,0],"exe":"` + work + `/bin/x"}`,
		`{"pid":100,"syscall":"clone","nr":56,"args":[17,0,0,0,0,0],"exe":"` + work + `/bin/x"}`,
		// a child: its library open is noise, its write and exec are not
		`{"pid":101,"ppid":100,"syscall":"openat","nr":257,"kind":"open","path":"/usr/lib/x86_64-linux-gnu/libc.so.6","flags":524288,"exe":"` + work + `/bin/x"}`,
		`{"pid":101,"ppid":100,"syscall":"openat","nr":257,"kind":"open","path":"` + work + `/home/.x","flags":577,"exe":"` + work + `/bin/x"}`,
		`{"pid":101,"ppid":100,"syscall":"execve","nr":59,"kind":"exec","path":"` + work + `/home/.x","argv":["sh","-i"],"exe":"` + work + `/bin/x"}`,
		`{"pid":100,"syscall":"ptrace","nr":101,"args":[16,101,0,0,0,0],"exe":"` + work + `/bin/x"}`,
		`{"pid":100,"ppid":10,"syscall":"newfstatat","nr":262,"kind":"stat","path":"/archangel-riskdata/end","exe":"` + work + `/bin/x"}`,
		`{"pid":100,"ppid":10,"syscall":"openat","nr":257,"kind":"open","path":"/proc/100/status","exe":"` + work + `/bin/x"}`,
	}, "\n") + "\n"
	name := filepath.Join(dir, "h-revshell-test.jsonl")
	if err := os.WriteFile(name, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	recs, err := compact(name, &rewriter{work: work, root: "/src", archangel: work + "/archangel"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		if r.Technique != "revshell" || r.Workload != "h-revshell-test" {
			t.Errorf("%s %s: labelled %q in workload %q", r.Syscall, r.Path, r.Technique, r.Workload)
		}
		got = append(got, r.Syscall+" "+r.Path)
		switch {
		case r.Syscall == "dup2" && !r.StdioSocket:
			t.Error("dup2 onto stdin after connect: StdioSocket not set")
		case r.Syscall == "execve":
			if !r.Wrote || !r.StdioSocket || r.Path != "/home/user/.x" || r.ParentExe != "/tmp/archangel-riskdata/bin/x" {
				t.Errorf("exec record %+v: want Wrote, StdioSocket, path /home/user/.x, parent /tmp/archangel-riskdata/bin/x", r)
			}
		case r.Syscall == "ptrace" && (!r.Descendant || r.Args[1] != 0 || r.Args[0] != 16):
			t.Errorf("ptrace record %+v: want Descendant, request kept, pid zeroed", r)
		}
	}
	want := []string{"connect ", "dup2 ", "clone ", "openat /home/user/.x", "execve /home/user/.x", "ptrace "}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("records:\n\t%s\nwant:\n\t%s", strings.Join(got, "|"), strings.Join(want, "|"))
	}
}
