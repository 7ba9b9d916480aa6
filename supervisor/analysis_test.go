package supervisor

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/archangel-sandbox/archangel/analyzer"
)

func TestParseChatVerdict(t *testing.T) {
	tests := []struct {
		content string
		verdict string
		ok      bool
	}{
		{`{"verdict":"deny","score":0.9,"reason":"x"}`, "deny", true},
		{"```json\n{\"verdict\": \"allow\", \"score\": 0.1, \"reason\": \"fine\"}\n```", "allow", true},
		{`Sure! {"verdict":"allow","score":0,"reason":""} Hope that helps.`, "allow", true},
		{`{"verdict":"maybe","score":0.5}`, "", false},
		{`allow`, "", false},
		{``, "", false},
		{`{"verdict":"allow"} and {"verdict":"deny"}`, "", false},
	}
	for _, tc := range tests {
		ar, err := parseChatVerdict(tc.content)
		if (err == nil) != tc.ok || tc.ok && ar.Verdict != tc.verdict {
			t.Errorf("parseChatVerdict(%q) = %+v, %v; want %q ok=%t", tc.content, ar, err, tc.verdict, tc.ok)
		}
	}
}

func TestAnalysisKeySeparatesWhatTheModelSaw(t *testing.T) {
	base := analyzer.Call{Name: "openat", Kind: analyzer.KindOpen, Access: analyzer.AccessRead, Path: "/etc/passwd",
		Process: analyzer.Process{Exe: "/usr/bin/cat"}}
	write := base
	write.Access, write.Flags = analyzer.AccessWrite, unix.O_WRONLY|unix.O_TRUNC
	other := base
	other.Process.Exe = "/usr/bin/tee"
	exec1 := analyzer.Call{Name: "execve", Kind: analyzer.KindExec, Path: "/bin/sh", Argv: []string{"sh", "-c", "ls"}}
	exec2 := exec1
	exec2.Argv = []string{"sh", "-i"}
	scalar1 := analyzer.Call{Name: "personality", Kind: analyzer.KindOther, Args: [6]uint64{8}}
	scalar2 := scalar1
	scalar2.Args[0] = 0xffffffff
	same := base
	for _, tc := range []struct {
		a, b analyzer.Call
		same bool
	}{
		{base, same, true}, {base, write, false}, {base, other, false}, {exec1, exec2, false}, {scalar1, scalar2, false},
	} {
		if got := analysisKey(&tc.a) == analysisKey(&tc.b); got != tc.same {
			t.Errorf("analysisKey(%+v) == analysisKey(%+v): %t, want %t", tc.a, tc.b, got, tc.same)
		}
	}
}
