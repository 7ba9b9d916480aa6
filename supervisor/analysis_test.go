package supervisor

import (
	"testing"
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
