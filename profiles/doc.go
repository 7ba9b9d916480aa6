// Package profiles is archangel's rule database: the TOML profile schema,
// the loader (Load, Parse) with validation that names file:line:col and a
// fix, the x86-64 system call table, syscall groups, and the built-in
// profiles (default, strict, audit) embedded in the binary.
//
// It is pure data: a loaded Profile is identical on every machine. It must
// not import any other archangel package, libseccomp or cgo (a test runs
// `go list -deps` with CGO_ENABLED=0); it relies on no kernel interface
// beyond the x86-64 system call numbers (arch/x86/entry/syscalls/syscall_64.tbl),
// generated from the Linux 6.1 UAPI headers plus later calls added by hand
// (internal/gen), and the asm-generic errno numbers.
//
// # Schema
//
// This comment is the authority; the README copies it.
//
//	[profile]
//	name = "web"                  # defaults to the file's base name
//	description = "..."
//	extends = ["default"]         # names or paths (relative to this file); base first
//	default = "deny"              # allow | deny | kill | log | notify: syscalls no rule names
//	errno = "EPERM"               # errno for default = "deny" (default EPERM)
//	mode = "enforce"              # enforce | audit
//	io_uring = false              # must be true to allow, log or notify any io_uring_* call
//
//	[syscalls]
//	allow  = ["@basic-io", "futex"]   # names or @groups
//	deny   = ["@mount"]
//	errno  = "EPERM"                  # errno for the deny list (default EPERM)
//	kill   = ["kexec_load"]
//	log    = []
//	notify = ["@exec", "connect"]
//
//	[[syscalls.rule]]                 # scalar-argument rules, compiled into BPF
//	names  = ["personality"]          # names or @groups
//	action = "allow"                  # allow | deny | kill | log | notify
//	errno  = "EPERM"                  # only with action = "deny" (default EPERM)
//	args   = [{ index = 0, op = "eq", value = 0 },
//	          { index = 1, op = "masked_eq", mask = 0x10000000, value = 0 }]
//
//	[files]                           # path globs, decided by the supervisor
//	read  = ["/usr/**", "${CWD}/**"]
//	write = ["${CWD}/**"]
//	exec  = ["/usr/bin/*"]
//	deny  = ["/etc/shadow", "${HOME}/.ssh/**"]
//
//	[network]                         # connect | bind | deny
//	connect = ["127.0.0.0/8:*", "[::1]:443", "10.0.0.1:8000-8100",
//	           "proxy.example.org:443", "*", "unix:/run/x.sock", "unix:@abstract"]
//
//	[[exec.rule]]
//	path = "/usr/bin/git"             # glob
//	argv = ["git", "clone", "*"]      # glob per argument; empty: any argv
//	parent = ["make"]                 # comm or path globs of ancestors, nearest first
//	action = "allow"                  # allow | deny | kill | log
//
//	[supervisor]
//	default = "allow"                 # notified calls no rule decides: allow | deny | kill
//	errno = "EPERM"
//	cache_size = 4096                 # 0: built-in size
//	advisory = ["exec"]               # call kinds whose allow may be checked-then-continued
//	patterns = false                  # multi-event behaviour patterns (supervisor/patterns)
//
//	[analyzer]
//	model = "builtin"                 # builtin | none | http | chat
//	mode = "enforce"                  # enforce | audit: carry the model's verdicts out, or only record them
//	budget = "100us"                  # Go duration, > 0
//	on_timeout = "deny"               # allow | deny | kill
//	endpoint = ""                     # for http and chat: an http(s) URL on a loopback address
//	chat_model = ""                   # for chat: the model name the server knows
//	sequence = "report"               # report | deny | kill: what a thread the sequence model finds anomalous gets
//
// Values: actions are allow, deny (alias errno), kill, log, notify. Errnos
// are Linux names ("EPERM", "ENOSYS", "EWOULDBLOCK"...) or numbers 1..4095,
// as a string or an integer. Argument ops are eq, ne, lt, le, gt, ge,
// masked_eq (arg & mask == value; needs mask; value bits outside mask are an
// error); op defaults to eq; index is 0..5; value and mask are integers
// (negative ones are 64-bit two's complement) or strings holding an
// unsigned number ("0xffffffffffffffff"). Path globs are path.Match syntax
// per element plus "**" as a whole element for any number of elements; they
// are absolute or start with ${CWD}, ${HOME} or ${TMPDIR}. Network entries
// are "*", "unix:/path", "unix:@abstract" or HOST:PORTS, where HOST is an
// IPv4 address or CIDR (host bits clear), a bracketed IPv6 address or CIDR,
// a DNS name or "*", and PORTS is N, N-M or "*".
//
// Defaults when no profile in the chain sets them: default = "deny" with
// EPERM, mode = "enforce", io_uring = false, supervisor.default = "deny"
// (fail closed) with EPERM, analyzer model "none" (mode enforce), budget 100us,
// on_timeout "deny".
//
// # Rule semantics
//
// Within one profile each system call gets one unconditional action from
// the lists: a name written explicitly beats membership of a group; when
// groups disagree, the stricter action wins: kill > deny > notify > log >
// allow. The same name written explicitly in two lists is an error
// ("conflicting rules"); repeats within one list are fine.
// Profile.Rules keeps only rules in force: after resolution every system
// call appears in at most one unconditional Rule (the entry that won, with
// the list entry as written in Rule.Entry).
//
// [[syscalls.rule]] adds conditional rules (args required): they are tried
// in order and the first whose conditions all hold decides; otherwise the
// unconditional action (from the lists, or the profile default) applies.
// Conditional rules with different verdicts on one syscall must be
// provably disjoint: each with an op = "eq" test of the same argument, with
// different values; anything else is "overlapping argument rules with
// different actions".
//
// extends, base first: a profile that names a system call anywhere (in a
// list, directly or through a group, or in a conditional rule) replaces all
// of its bases' rules for that call, conditional ones included. [profile]
// scalars, and [supervisor] and [analyzer] fields, override when set;
// [files] and [network] lists and [[exec.rule]] append. name is never
// inherited. Several bases merge left to right, as if each extended the
// one before. Cycles and missing bases are errors at the extends entry.
// Names are looked up in $ARCHANGEL_PROFILE_PATH (colon-separated),
// /etc/archangel/profiles, $XDG_CONFIG_HOME (or ~/.config)/archangel/profiles,
// then the built-ins; built-ins extend only by name.
//
// # Checks on the resolved profile
//
//   - Launcher: each of LauncherSyscalls must run unconditionally (allow or
//     log, no conditional rule with another action); execve may also be
//     notified. The launcher makes these calls after loading the filter and
//     before the supervisor holds the listener, so it would hang or fail.
//   - Alias families (AliasFamilies: open/openat/openat2/creat,
//     execve/execveat, connect/sendto/sendmsg/sendmmsg, the rename, link,
//     symlink, unlink, mkdir, chmod and chown families, clone/clone3,
//     io_uring_*): when a rule guards a member (notify, deny or kill), no
//     member may run unguarded (allow or log, by a rule or the default).
//     A guard by the profile default alone does not count: a deny-by-default
//     profile that allows openat but not open guards nothing on purpose.
//   - io_uring is denied unless allowed knowingly: without io_uring = true,
//     a rule that allows, logs or notifies an io_uring_* call is an error,
//     and io_uring_* calls no rule names get an implicit deny with ENOSYS
//     (Rule.Source "profile.io_uring") when the profile default would let
//     them through, so that programs fall back to ordinary calls.
//   - analyzer.model = "http" needs an endpoint.
//
// Every problem is reported at once (errors.Join of *Error values, sorted
// by position), in the form
//
//	web.toml:14:11: unknown syscall "opn" in syscalls.allow (did you mean "open"?)
//		hint: `archangel syscalls` lists valid names
//
// Positions come from a scan of the document (posIndex): BurntSushi/toml
// keeps key positions out of its MetaData. The loader decodes into a plain
// map and walks it against the schema, so unknown keys, wrong types and bad
// values are all found in one pass instead of stopping at the first
// UnmarshalText error; the enum types' UnmarshalText methods supply the
// value messages.
//
// # Learned overlay
//
// The supervisor's model tier decides notified calls no rule decides. Its
// verdicts are evidence: the supervisor (supervisor.OverlayWriter) merges
// them into the profile's learned overlay, a TOML file next to a profile
// file (app.toml -> app.learned.toml) or, for a profile found by name, in
// StateDir (NAME.learned.toml). LoadOverlay and ApplyOverlay compile it at
// the next launch: scalar verdicts into the kernel filter (conditional
// rules ahead of the profile's own, Rule.Learned set), verdicts on a path
// or an address into Profile.Learned, which the supervisor answers ahead
// of the model.
//
//	[overlay]
//	profile = "app"                   # the profile it belongs to
//
//	[[rule]]                          # compiled at launch
//	syscall = "personality"
//	verdict = "deny"                  # allow | deny
//	errno = "EPERM"                   # with deny (default EPERM)
//	args = [{ index = 0, value = 0 }] # every scalar argument, exactly
//	count = 12                        # calls decided with this verdict
//	runs = 2                          # runs that reached it (>= MinEvidenceRuns)
//	first_seen = "2026-11-25T09:00:00Z"
//	last_seen = "2026-11-26T01:02:03Z"
//	source = "analyzer"               # analyzer | ask
//	seen_in = ["/usr/bin/python3"]    # scalar verdicts: where the calls came from
//
//	[[rule]]
//	syscall = "openat"
//	verdict = "allow"
//	exe = "/usr/bin/cat"              # path and address verdicts hold for one executable
//	path = "/srv/data/report.txt"     # or addr = "127.0.0.1:8080" / "unix:/run/x.sock"
//	access = "read"                   # read | write | read+write: exactly as asked
//	count = 4
//	runs = 2
//
//	[[pending]]                       # evidence from fewer runs: not compiled
//	[[refused]]                       # reason = "...": flipped or not allowed; not compiled
//
// A learned rule is never wider than its evidence: a scalar rule names
// every scalar argument of the call (ScalarArgs, from the kernel's own
// parameter lists) with op eq, a path or address rule one executable, one
// exact path or address and the access asked for. It needs the same
// verdict in MinEvidenceRuns runs (one run gives one analysis: the model
// tier caches its verdict for the rest of the run), or one answer from a
// person (source "ask"); a verdict that flips is moved to [[refused]],
// where further evidence only accumulates. No overlay may allow a call of
// @mount, @module, @reboot, @swap, @raw-io, @clock, @cpu-emulation,
// @obsolete, @keyring or @io-uring, nor kexec_*, bpf, perf_event_open,
// userfaultfd, ptrace or process_vm_* (DangerousReason), nor a credential
// path (CredentialPaths, ${HOME} standing for any directory). A rule that
// contradicts the profile (a rule or the default decides the call, and
// otherwise) is refused. At load time each of these is an error naming
// overlay file:line:col, never a weaker filter; `archangel run
// --no-learned` runs without the overlay.
package profiles
