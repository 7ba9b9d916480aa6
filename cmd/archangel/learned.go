package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/archangel-sandbox/archangel/profiles"
	"github.com/archangel-sandbox/archangel/supervisor"
)

// learnedFlags select a profile's learned overlay (profiles.OverlayPath:
// app.toml -> app.learned.toml; a profile found by name keeps its overlay
// in profiles.StateDir).
type learnedFlags struct {
	Learned   string `help:"The learned overlay to compile in and to record the model's verdicts into (default: beside a profile file, app.toml -> app.learned.toml; for a profile found by name, NAME.learned.toml in /var/lib/archangel/learned for root, ~/.local/state/archangel/learned otherwise)." type:"path" placeholder:"FILE"`
	NoLearned bool   `help:"Ignore the learned overlay: compile the profile alone and record nothing."`
}

// overlayPath is the overlay file the flags select for the profile ref,
// or "" with --no-learned.
func (f *learnedFlags) overlayPath(ref string) string {
	switch {
	case f.NoLearned:
		return ""
	case f.Learned != "":
		return f.Learned
	}
	return profiles.OverlayPath(ref)
}

// load loads the profile ref with its overlay applied (unless
// --no-learned); base is the profile without it, ov the overlay (nil when
// there is none).
func (f *learnedFlags) load(ref string) (p, base *profiles.Profile, ov *profiles.Overlay, err error) {
	base, err = profiles.Load(ref)
	if err != nil {
		return nil, nil, nil, err
	}
	path := f.overlayPath(ref)
	if path == "" {
		return base, base, nil, nil
	}
	ov, err = profiles.LoadOverlay(path)
	if err != nil {
		return nil, nil, nil, err
	}
	if ov == nil {
		return base, base, nil, nil
	}
	p, err = profiles.ApplyOverlay(base, ov)
	if err != nil {
		return nil, nil, nil, err
	}
	return p, base, ov, nil
}

// writer returns the OverlayWriter a run of p records into: nil with
// --no-learned, and nil unless p's model is a remote one (http, chat).
// Those are the slow, costly and possibly nondeterministic verdicts the
// loop is for; the builtin model's verdicts are microseconds away and
// would only freeze one model version's output into a file that outlives
// it. The writer writes the file only when the model decided something.
func (f *learnedFlags) writer(ref string, p, base *profiles.Profile, logger *slog.Logger) *supervisor.OverlayWriter {
	path := f.overlayPath(ref)
	if path == "" || p.Analyzer.Model != "http" && p.Analyzer.Model != "chat" {
		return nil
	}
	return supervisor.NewOverlayWriter(path, base, logger)
}

// closeOverlay writes a run's evidence; a failure is reported, and does
// not change the command's exit status.
func closeOverlay(w *supervisor.OverlayWriter, stderr io.Writer) {
	if w == nil {
		return
	}
	if err := w.Close(); err != nil {
		fmt.Fprintf(stderr, "archangel: warning: %v\n", err)
	}
	if n := w.Dropped(); n > 0 {
		fmt.Fprintf(stderr, "archangel: warning: %d model verdicts not recorded in %s (too many distinct calls between writes)\n", n, w.Path())
	}
}

// writeOverlaySummary lists an overlay's entries for `profile check`.
func writeOverlaySummary(w io.Writer, ov *profiles.Overlay) {
	if ov == nil {
		return
	}
	scalar, pointer, pending, refused := ov.Entries()
	fmt.Fprintf(w, "learned overlay %s: %d rules (%d in the kernel filter, %d answered by the supervisor), %d pending, %d refused\n",
		ov.File, scalar+pointer, scalar, pointer, pending, refused)
	for _, sec := range []struct {
		what string
		list []profiles.LearnedVerdict
	}{{"rule", ov.Rules}, {"pending", ov.Pending}, {"refused", ov.Refused}} {
		for _, v := range sec.list {
			verdict := v.Action.String()
			if v.Action == profiles.ActionErrno {
				verdict = "deny " + v.Errno.String()
			}
			fmt.Fprintf(w, "  %-7s %s %s: %s (%s)", sec.what, verdict, v.What(), v.Summary(), v.Pos)
			if v.Reason != "" {
				fmt.Fprintf(w, ": %s", v.Reason)
			}
			fmt.Fprintln(w)
		}
	}
}
