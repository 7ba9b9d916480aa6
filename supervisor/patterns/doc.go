// Package patterns is step 4 of the supervisor (DESIGN.md): behaviour
// that no single call shows. A pattern is an ordered list of steps, each
// matching one notified call; when the last step matches, Observe returns
// a Match and the supervisor applies the pattern's verdict to that call
// (denies the exec of the shell, or kills the process).
//
// It is pure Go: no fds, no system calls, no cgo. It imports analyzer
// (the decoded call), profiles (Action, Op, Error, syscall names and
// groups), BurntSushi/toml and the standard library, nothing else
// (TestDeps). It relies on no kernel interface beyond the x86-64 argument
// order of the calls its patterns name (the patterns file says which
// argument is which) and the socket family numbers AF_UNIX 1, AF_INET 2,
// AF_INET6 10.
//
// Patterns are data: builtin.toml ships with the binary (Builtin), and
// Load accepts the same schema from a file or, later, a profile.
//
//	e := patterns.Builtin(patterns.Env{HOME: home})
//	for _, m := range e.Observe(patterns.Event{Call: c, Time: now, Verdict: v, Denied: denied, Tree: ancestors}) {
//		// apply m.Verdict to c; log m.Pattern, m.Risk, m.Steps
//	}
//	e.Forget(pid) // when the process has exited
//
// # Schema
//
//	[[pattern]]
//	name = "reverse-shell"       # required: [a-z0-9][a-z0-9_-]*, unique
//	description = "..."
//	risk = 0.95                  # required: 0..1
//	verdict = "kill"             # required: deny | kill | log (detect only)
//	scope = "tree"               # process (default) | tree | sandbox
//	window = "60s"               # required with several steps or a count:
//	                             # the most time from the first event to the last
//
//	  [[pattern.step]]           # one or more, matched in order
//	  name = "connect"           # label in Match.Steps; default "step N"
//	  syscalls = ["connect"]     # names or @groups (x86-64); default any call
//	  kinds = ["connect"]        # analyzer.Kind names: other open stat exec create
//	                             # delete rename attr connect bind chdir
//	  paths = ["/**/bin/sh"]     # Call.Path matches one of the globs
//	  path = "$file"             # Call.Path equals a captured path
//	  path_pid = "other"         # Call.Path is /proc/PID/... of another process
//	                             # ("self": of the caller; self, thread-self,
//	                             # its PID and TID count as the caller)
//	  exe = ["/usr/bin/curl"]    # Call.Process.Exe matches one of the globs
//	  not_exe = ["/usr/bin/ssh"] # ... and matches none of these
//	  argv = ["python*", "-c", "**"]  # Call.Argv, positionally; a last "**" takes the rest
//	  access = ["read"]          # Call.Access has all of these bits (read, write, exec;
//	                             # a zero Access counts as read for open, stat and
//	                             # chdir, write for create, delete, attr and rename)
//	  addr = ["not_allowed"]     # Call.Addr is set and matches one entry: "any";
//	                             # "not_allowed" (Event.Verdict != allow); "ip";
//	                             # "unix"; an address or CIDR (v4-mapped unmapped)
//	  denied = true              # Event.Denied equals this
//	  flags = 0x1000             # Call.Flags has all of these bits
//	  fd = "$sock"               # argument 0 equals a capture (or an int, or a list)
//	  args = [{ index = 1, op = "eq", value = [0, 1, 2] }]
//	  count = 5                  # this many matching events within the window
//	  capture = "sock"           # bind a value for later steps ...
//	  from = "arg0"              # ... from arg0..arg5, ret (Event.Ret) or path
//	  same_process = true        # made by the process that made the previous step
//
// Every condition given must hold (AND); a list inside one condition is
// any-of (OR). Unknown keys, syscall names, groups, kinds, bad globs,
// durations, references to captures not bound by an earlier step, or of
// the wrong type, are errors naming file:line:col (*profiles.Error,
// joined: profiles.Errors lists them).
//
// args entries compare the low 32 bits of an argument, as the C int the
// kernel reads for descriptors and flags (upper bits of the register are
// ignored by those calls, so a caller cannot dodge a match by setting
// them): op is eq, ne, lt, le, gt, ge (signed) or masked_eq (with mask);
// value is an integer, a list (eq: any of; ne: none of; masked_eq: any
// of), or "$capture" (eq, ne). fd = X is args { index = 0, op = "eq",
// value = X }: for the calls taking a descriptor it is their first
// argument. Captures from "ret" need Event.RetKnown (the step does not
// match without it); from "path" need a non-empty Call.Path.
//
// # Globs
//
// Path globs (paths, exe, not_exe) are those of supervisor/rules: in one
// element '*' matches any run of characters, '?' one character, '[a-z]'
// and '[^a-z]' a class, '\' escapes; none of them matches '/'. "**" as a
// whole element matches zero or more elements: "/**/bin/sh" is /bin/sh,
// /usr/bin/sh, /usr/local/bin/sh. A glob may start with ${HOME} (Env.HOME,
// absolute, taken literally); Load refuses it when HOME is empty, Builtin
// leaves those globs out. argv globs use the same syntax with '/' an
// ordinary character. Paths are matched as the decoder gives them (clean,
// absolute, symlinks not resolved).
//
// # Semantics
//
// Each event is checked against the steps that name its system call (or
// kind). A matching first step starts a partial match owned by the
// calling process (for a one-step pattern: a Match at once); a matching
// later step advances the partial matches of that pattern waiting for it
// that the event may continue:
//
//   - owned by the caller, or with scope = "tree" by one of Event.Tree
//     (the caller's ancestors, nearest first, at most MaxTreeDepth): the
//     first step's process and its descendants; with scope = "sandbox"
//     any process of the run (Forget does not drop these: a downloaded
//     file outlives the downloader);
//   - still within the window: Event.Time - time of the first step <= window;
//   - with same_process, the previous step was made by the caller;
//   - the step's captured-value conditions hold.
//
// Advancing copies the partial match (the original stays and may be
// advanced again by a later event: after two connects, the dup2 of either
// socket continues the right one); one event advances a partial match by
// at most one step. A completed match is consumed; with count > 1 the
// step keeps the times of its last count events and completes whenever
// those fit in the window (a sliding window: the sixth denied call in 10s
// matches again). Matches are returned in file order.
//
// The verdict applies to the event that completed the pattern. In audit
// mode the supervisor records it; Observe is the same in both modes.
//
// # What the supervisor supplies
//
//   - Call: the decoded call, Process.PID the thread group ID (the owner of
//     partial matches), Process.TID, Process.Exe.
//   - Time: the notification's arrival time.
//   - Ret, RetKnown: the result, when the supervisor performed the call
//     itself (memfd_create for memfd-exec); otherwise RetKnown false.
//   - Verdict: the rule layer's action; ActionAllow only when an explicit
//     allow rule matched, ActionUnset when the [supervisor] default
//     decided. Denied: the call is refused (in audit mode: would be).
//   - Tree: the ancestors' PIDs inside the sandbox, nearest first
//     (needed only when some pattern has scope = "tree").
//   - Forget(pid) when a process has exited (its PID may be reused).
//   - The patterns only see notified calls: Syscalls lists the ones the
//     profile must notify.
//
// # Memory and concurrency
//
// Partial matches are bounded (Limits): per pattern and owner (8), per
// owner (64) and in total (4096); adding one beyond a bound evicts the
// oldest in that bound. Two partial matches equal but for their start
// keep the later start. Expired ones are dropped when next looked at. A
// process can therefore push its own old partial matches out by starting
// many new ones (eight non-allowed connects between the first connect and
// the dup2); the limits trade that for bounded memory.
//
// The engine is deterministic: the same events in the same order give the
// same matches. Observe, Forget, States and SetLimits may be called from
// several goroutines (a mutex serialises them); events should be observed
// in notification order. Observe does not allocate for an event that
// matches no step.
package patterns
