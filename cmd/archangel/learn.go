package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/archangel-sandbox/archangel/filter"
	"github.com/archangel-sandbox/archangel/profiles"
	"github.com/archangel-sandbox/archangel/supervisor"
)

type learnCmd struct {
	Profile string   `help:"Base profile: what it allows is not re-learned, and the learned profile extends it." placeholder:"BASE"`
	Out     string   `help:"Where to write the learned profile (learning again into an existing file only adds)." required:"" type:"path" placeholder:"FILE"`
	Merge   []string `help:"Merge learned profiles (CI matrices, replicas) instead of running a command." placeholder:"FILE" sep:"none"`
	Events  string   `help:"Append a JSON-lines record of every call seen to FILE." type:"path" placeholder:"FILE"`
	Ask     bool     `help:"Interactive: show each new kind of event (programs started, peers, files outside the system directories, privileged calls) on the terminal and ask: allow once, always, or deny. Answers go into the profile."`
	AskFrom string   `hidden:"" help:"Read --ask answers from FILE (one per line) instead of the terminal." type:"path"`
	SeqFile string   `name:"seq-model" help:"Where to write the per-program sequence models trained on every thread's system-call stream (default: beside --out, app.toml: app.seq; learning again adds the run and retrains, and several runs calibrate the threshold); none: do not record. Needs root (BPF tracepoint tap)." placeholder:"FILE"`
	Command []string `arg:"" optional:"" passthrough:"partial" help:"Command and arguments (after --)."`
}

func (l *learnCmd) Run(g *Globals, logger *slog.Logger) error {
	args := l.Command
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	name := strings.TrimSuffix(filepath.Base(l.Out), filepath.Ext(l.Out))
	switch {
	case len(l.Merge) > 0 && len(args) > 0:
		return &exitStatus{code: supervisor.ExitFailure, err: errors.New("learn: give either --merge FILES or a command, not both")}
	case len(l.Merge) > 0:
		return l.merge(g, name)
	case len(args) == 0:
		return &exitStatus{code: supervisor.ExitFailure, err: errors.New("learn: no command given (usage: archangel learn --out app.toml -- COMMAND [ARGS...])")}
	}

	var base *profiles.Profile
	extends := ""
	if l.Profile != "" {
		var err error
		if base, err = profiles.Load(l.Profile); err != nil {
			return &exitStatus{code: supervisor.ExitFailure, err: err}
		}
		extends = l.Profile
	}
	lp := supervisor.LearningProfile(base)
	prog, err := filter.Compile(lp, filter.Options{Arch: filter.ArchAMD64, Mode: profiles.ModeAudit, NotifyAllowed: supervisor.IdentityCalls})
	if err != nil {
		return &exitStatus{code: supervisor.ExitFailure, err: fmt.Errorf("compile learning filter: %w", err)}
	}
	learner := supervisor.NewLearner()
	cmd := supervisor.Command(prog, lp, args[0], args[1:]...)
	cmd.Mode = profiles.ModeAudit
	cmd.Learner = learner
	cmd.Logger = logger
	if l.SeqFile != "none" {
		cmd.SeqRecorder = supervisor.NewSeqRecorder()
	}
	cmd.ForwardSignals = true
	if l.Events != "" {
		f, err := os.OpenFile(l.Events, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return &exitStatus{code: supervisor.ExitFailure, err: fmt.Errorf("open event log: %w", err)}
		}
		defer f.Close()
		cmd.Events = f
	}
	if l.Ask || l.AskFrom != "" {
		in, out := io.Reader(nil), io.Writer(g.stderr)
		if l.AskFrom != "" {
			f, err := os.Open(l.AskFrom)
			if err != nil {
				return &exitStatus{code: supervisor.ExitFailure, err: err}
			}
			defer f.Close()
			in = f
		} else {
			tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
			if err != nil {
				return &exitStatus{code: supervisor.ExitFailure, err: fmt.Errorf("learn --ask needs a terminal: %w", err)}
			}
			defer tty.Close()
			in, out = tty, tty
		}
		cmd.Asker = supervisor.NewAsker(in, out)
	}
	stop := func() {}
	if cmd.Asker == nil {
		stop = progress(g, learner) // a progress line would cut into the questions
	}
	res, runErr := cmd.Run()
	stop()

	cwd, _ := os.Getwd()
	learned := learner.Result(supervisor.LearnEnv{CWD: cwd, HOME: os.Getenv("HOME"), TMPDIR: os.Getenv("TMPDIR")})
	h := supervisor.ProfileHeader{Name: name, Extends: extends, Command: args, Status: fmt.Sprintf("The command exited with status %d", res.ExitCode)}
	if res.Signal != 0 {
		h.Status = fmt.Sprintf("The command was killed by signal %d", int(res.Signal))
	}
	if runErr != nil {
		h.Status = "The command could not run: " + runErr.Error()
	}
	if runErr != nil || res.ExitCode != 0 {
		h.Note = "It did not succeed: this is what it did until then, which may not be all it needs."
	}
	if prev, err := os.ReadFile(l.Out); err == nil {
		// Learning again over an existing profile only adds.
		p, err := profiles.Parse(l.Out, prev)
		if err != nil {
			return &exitStatus{code: supervisor.ExitFailure, err: fmt.Errorf("learn again into %s: %w", l.Out, err)}
		}
		old, err := supervisor.FromProfile(p)
		if err != nil {
			return &exitStatus{code: supervisor.ExitFailure, err: fmt.Errorf("learn again into %s: %w", l.Out, err)}
		}
		learned.Merge(old)
		h.Status += "; merged with what " + l.Out + " held before"
	}
	if err := writeLearned(l.Out, learned.WriteProfile(h)); err != nil {
		return &exitStatus{code: supervisor.ExitFailure, err: err}
	}
	fmt.Fprintf(g.stderr, "archangel: %s; wrote %s\n", learner.Progress(), l.Out)
	if err := l.writeSeqModels(g, cmd.SeqRecorder, res.Stats); err != nil {
		return &exitStatus{code: supervisor.ExitFailure, err: err}
	}
	if h.Note != "" {
		fmt.Fprintf(g.stderr, "archangel: the command did not succeed (%s): the profile holds what it did until then\n", strings.TrimPrefix(h.Status, "The command "))
	}
	if runErr != nil {
		return &exitStatus{code: supervisor.ExitCode(runErr)}
	}
	if res.ExitCode != 0 {
		return &exitStatus{code: res.ExitCode}
	}
	return nil
}

// merge combines learned profiles into one.
func (l *learnCmd) merge(g *Globals, name string) error {
	var all *supervisor.Learned
	extends := ""
	for i, f := range l.Merge {
		p, err := profiles.Load(f)
		if err != nil {
			return &exitStatus{code: supervisor.ExitFailure, err: err}
		}
		ext := strings.Join(p.Extends, ",")
		if i == 0 {
			extends = ext
		} else if ext != extends {
			return &exitStatus{code: supervisor.ExitFailure, err: fmt.Errorf("merge: %s extends %q but %s extends %q: merge profiles learned over the same base", l.Merge[0], extends, f, ext)}
		}
		got, err := supervisor.FromProfile(p)
		if err != nil {
			return &exitStatus{code: supervisor.ExitFailure, err: fmt.Errorf("merge %s: %w", f, err)}
		}
		if all == nil {
			all = got
		} else {
			all.Merge(got)
		}
	}
	h := supervisor.ProfileHeader{Name: name, Extends: extends, Status: "Merged from " + strings.Join(l.Merge, ", ")}
	if err := writeLearned(l.Out, all.WriteProfile(h)); err != nil {
		return &exitStatus{code: supervisor.ExitFailure, err: err}
	}
	fmt.Fprintf(g.stderr, "archangel: merged %d profiles into %s\n", len(l.Merge), l.Out)
	return nil
}

// writeLearned checks that the profile loads (a learned profile that
// archangel itself refuses is a bug) and writes it.
func writeLearned(path string, data []byte) error {
	if _, err := profiles.Parse(path, data); err != nil {
		return fmt.Errorf("learned profile does not load (this is archangel's bug; the text follows):\n%w\n%s", err, data)
	}
	return os.WriteFile(path, data, 0o644)
}

// progress prints the learner's state on stderr while the command runs:
// redrawn in place on a terminal, a line every 5 s otherwise.
func progress(g *Globals, l *supervisor.Learner) (stop func()) {
	tty := false
	if f, ok := g.stderr.(*os.File); ok {
		_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		tty = err == nil
	}
	every := 5 * time.Second
	if tty {
		every = 500 * time.Millisecond
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				if tty {
					fmt.Fprint(g.stderr, "\r\033[K")
				}
				return
			case <-t.C:
				if tty {
					fmt.Fprintf(g.stderr, "\r\033[K%s", l.Progress())
				} else {
					fmt.Fprintln(g.stderr, "archangel: "+l.Progress())
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}

// writeSeqModels trains the sequence models of what the recorder saw and
// writes them beside the profile (or to --seq-model), or says why it
// could not.
func (l *learnCmd) writeSeqModels(g *Globals, rec *supervisor.SeqRecorder, st *supervisor.Stats) error {
	if rec == nil {
		return nil
	}
	if why := rec.Unavailable(); why != "" {
		fmt.Fprintf(g.stderr, "archangel: no sequence model trained: %s\n", why)
		return nil
	}
	path := l.SeqFile
	if path == "" {
		path = supervisor.SeqModelFile(l.Out)
	}
	var prev *supervisor.SeqModels
	if _, err := os.Stat(path); err == nil {
		// Learning again adds this run to the ones the file holds.
		if prev, err = supervisor.LoadSeqModels(path); err != nil {
			return err
		}
	}
	models, report, err := rec.Train(prev)
	if err != nil {
		return err
	}
	if len(report) == 0 {
		fmt.Fprintln(g.stderr, "archangel: no sequence model trained: no system call was recorded")
		return nil
	}
	if err := models.WriteFile(path); err != nil {
		return err
	}
	for _, line := range report {
		fmt.Fprintf(g.stderr, "archangel: sequence model: %s\n", line)
	}
	if st != nil {
		if s := st.Snapshot().Seq; s != nil && s.Lost > 0 {
			fmt.Fprintf(g.stderr, "archangel: sequence model: %d tap records lost (ring buffer full): the training streams have gaps\n", s.Lost)
		}
	}
	fmt.Fprintf(g.stderr, "archangel: wrote %d sequence models to %s\n", len(models.Programs), path)
	return nil
}
