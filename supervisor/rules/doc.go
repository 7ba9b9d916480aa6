// Package rules decides notified calls with a profile's [files], [network]
// and [[exec.rule]] entries (DESIGN.md, step 3 "rules"): Compile turns a
// loaded profile into an immutable Set at launch, Set.Decide matches one
// decoded analyzer.Call against it.
//
// It is pure Go: no fds, no system calls, no cgo. The only outside world
// it touches is DNS, through the Resolver it is given (net.DefaultResolver
// in production, a table in tests). It imports profiles, analyzer and the
// standard library, nothing else (TestDeps); it relies on no kernel
// interface beyond the numbering of socket families (AF_UNIX 1, AF_INET 2,
// AF_INET6 10) and of Landlock access rights (include/uapi/linux/landlock.h)
// it writes into a Plan.
//
// # Compile
//
//	s, err := rules.Compile(ctx, p, rules.Env{CWD: wd, HOME: home, TMPDIR: tmp}, net.DefaultResolver)
//	v := s.Decide(call, ancestors)
//
// A path glob may start with ${CWD}, ${HOME} or ${TMPDIR} (the loader
// checks that the variable is first and followed by "/" or nothing). They
// expand to the Env values, which must be absolute; TMPDIR defaults to
// /tmp; a variable that is used but empty is an error. Values are cleaned
// and taken literally: HOME=/home/we[ird gives "/home/we\[ird/**".
// Patterns are then cleaned like the paths they meet ("//", "." and ".."
// resolved lexically, trailing "/" dropped: "/usr/" is "/usr").
// Compile returns every problem at once, each as
// `file:line:col list[i] "pattern": what`.
//
// # Glob syntax
//
// A path glob is a sequence of elements. In an element, '*' matches any
// run of characters, '?' one character, '[a-z]', '[^a-z]' a class, and
// '\' escapes the next character (path.Match syntax). None of them matches
// '/'. "**" as a whole element matches zero or more elements. Dot files
// are not special. Examples:
//
//	/usr/**      /usr, /usr/lib, /usr/lib/x/y           not /usrx, /
//	/a/**/b      /a/b, /a/x/b, /a/x/y/b                 not /a/b/c
//	/**          every absolute path, / included
//	/            only /
//	/proc/*/mem  /proc/1/mem, /proc/self/mem            not /proc/1/task/1/mem
//	/etc/hosts   only /etc/hosts (no wildcard: one path)
//
// Call paths are matched as given (absolute and clean as Call.Path
// promises; an unclean path is cleaned, a relative one matches nothing).
// Rules match names, not inodes: the supervisor must match the path the
// kernel will use (for an emulated open, the path it opens; symlinks are
// its business, e.g. RESOLVE_NO_SYMLINKS or a check of the opened fd).
//
// In argv, parent and comm globs '*' matches '/' too: argv = ["git",
// "clone", "*"] matches a URL.
//
// # Specificity and precedence
//
// For each decision the most specific matching rule wins. A path glob's
// specificity is, compared in order: the number of literal (wildcard-free)
// elements, then the number of literal bytes, then fewer wildcards ("*",
// "?", "[...]" and "**" count one each). At equal specificity kill beats
// deny, deny beats log, log beats allow; then the rule written first
// wins, so the outcome never depends on map order. Examples (HOME=/home/u):
//
//	read "${HOME}/**" (2 literal elements) vs deny "${HOME}/.ssh/**" (3): ~/.ssh/id_rsa is denied
//	deny "${HOME}/.ssh/**" (3) vs read "${HOME}/.ssh/known_hosts" (4): known_hosts is readable
//	read "/etc/*" (1) vs deny "/etc/shadow" (2): /etc/shadow is denied
//	write "/tmp/**" vs deny "/tmp/**": equal, deny wins
//
// Verdict.Rule names the deciding rule as
// `file:line:col files.deny[2] "${HOME}/.ssh/**"` (the pattern as
// written; RuleInfo.Expanded has the expansion), Verdict.Index is its
// place in Explain(), Verdict.Specificity its packed comparison key (larger
// wins; compare only within one Set).
//
// # [files]
//
// Path calls (analyzer.Kind open, stat, chdir, create, delete, attr,
// rename) are checked per bit of Call.Access; a zero Access means read for
// open, stat and chdir and write for create, delete, attr and rename.
// Each bit is decided separately by the most specific rule among the
// rules of its list (read, write or exec) and every deny rule:
//
//   - if any bit's winner is a deny, the call is denied by it (EACCES);
//   - if no rule matches any bit, Matched is false: the [supervisor]
//     default decides;
//   - if every bit's winner allows, the call is allowed, and Rule names
//     the least specific of the winners (the weakest justification);
//   - if some bits are allowed and others have no rule, the call is
//     denied (EACCES), Rule names the allowing rule and Note says which
//     access is missing: read = ["/usr/**"] does not let O_RDWR through.
//
// rename and link check Path and Path2, both for write (a hard link of a
// denied file would expose it under a new name); symlink checks only the
// new name (Path), not its target. Exec needs no read rule: for an execve
// only the exec access is checked, the kernel's read of the program being
// part of executing it (an interpreter opening a script is an ordinary
// open and needs read).
//
// # [[exec.rule]]
//
// For an execve, [[exec.rule]]s, [files] exec and [files] deny compete in
// one list, ordered by the specificity of the path glob first; at equal
// path specificity an [[exec.rule]] beats a [files] entry, then more argv
// patterns win (a fixed-length argv above one ending in "**" with the same
// prefix), then a longer parent chain, then kill > deny > log > allow. So
// an [[exec.rule]] for "/usr/bin/git" overrides [files] deny
// "/usr/bin/git", but [files] deny "/usr/bin/sudo" still beats an
// [[exec.rule]] for "/usr/bin/*".
//
// argv patterns match positionally: the list must be as long as
// Call.Argv, unless its last element is "**", which matches any number
// (zero included) of remaining arguments. argv = [] or ["**"] matches any
// argv. A "**" elsewhere is an ordinary glob (any one argument).
//
// parent patterns match the caller's ancestors, nearest first: parent[0]
// is matched against ancestors[0], the parent of the process calling
// execve (that is, the parent of the program about to run), parent[1]
// against the grandparent, and so on; a chain shorter than the list does
// not match. A pattern containing '/' is a path glob (${VAR} expanded,
// must be absolute) matched against Ancestor.Exe; one without is matched
// against Ancestor.Comm, which the kernel truncates to 15 bytes (Compile
// warns about a longer literal). The supervisor passes
// Set.AncestorDepth() ancestors (0: nil).
//
// action is allow, log (allow, and Verdict.Action is ActionLog so the
// supervisor records it), deny (EACCES) or kill.
//
// # [network]
//
// connect entries and deny entries decide analyzer.KindConnect (connect,
// and sendto/sendmsg with an address); bind entries and deny entries
// decide KindBind. A call without an address matches nothing.
//
//   - "ADDR:PORTS", "CIDR:PORTS", "[V6]:PORTS", "[V6/BITS]:PORTS": IPv4
//     and IPv6 addresses. The call's address is unmapped first
//     (::ffff:10.0.0.1 is 10.0.0.1: IPv4 on the wire), and an entry
//     written as a v4-mapped prefix is its IPv4 form
//     ([::ffff:192.168.0.0]/112 is 192.168.0.0/16); so [::]/0 does not
//     match v4-mapped destinations. Zones are ignored.
//   - "*:PORTS": every IPv4 and IPv6 address.
//   - "*": every address of every family (IP, AF_UNIX, unnamed AF_UNIX,
//     netlink...), the least specific entry of all.
//   - "unix:/path/glob": AF_UNIX paths, path-glob syntax.
//   - "unix:@name": the abstract socket name exactly (no glob).
//   - "HOST:PORTS": see host names below.
//
// Specificity: "*" loses to everything; then, among IP entries, the
// longer prefix wins ("*:PORTS" has length 0), then the narrower port
// range, then deny over allow, then written order. Unix paths follow the
// path-glob order; all abstract entries are equally specific. Port 0 (an
// ephemeral bind) is matched like any port.
//
// # Host names
//
// Each host name is resolved at Compile (LookupNetIP "ip": A and AAAA;
// each lookup bounded by LookupTimeout within ctx); every address becomes
// a /32 or /128 entry whose Rule reads
// `t.toml:8:12 network.connect[0] "proxy.example.org:443" -> 93.184.216.34`.
// When a name does not resolve:
//
//   - a connect or bind entry matches nothing (fail closed) and
//     Warnings() says so; so does a deny entry whose name does not exist
//     (NXDOMAIN or no addresses: an authoritative answer);
//   - a deny entry whose lookup failed otherwise (timeout, SERVFAIL, no
//     resolver) is a Compile error: matching nothing would let through
//     what it names.
//
// Go's resolver does not return TTLs, so Refresh schedules lookups
// itself: RefreshMin (30s) after a change or a failure, doubling up to
// RefreshMax (5m) while answers stay the same; NextRefresh says when.
// Refresh returns the Set to use from then on (s itself when nothing was
// due), with Version bumped when any entry's addresses changed, and the
// lookup errors joined. An address stays while a successful answer has
// contained it within AddrRetention (15m), so rotating round-robin answers
// keep the addresses the target may have been given. When lookups keep
// failing, connect and bind entries keep the last answer for
// AddrRetention, then match nothing; deny entries keep it for good.
//
// # Truncated calls
//
// When Call.Truncated is set, a deny verdict stands but an allow becomes a
// deny (EACCES) naming the rule that would have allowed, with a Note: an
// allow needs the whole value (analyzer.Call). A call no rule matches
// stays unmatched; the supervisor must not let a truncated call through on
// its default either.
//
// # Safety
//
// Verdict.Safety says whether the verdict can be carried out without a
// time-of-check/time-of-use race on target memory (seccomp_unotify(2)):
//
//   - every deny is RaceFree: refusing is never wrong;
//   - an allow of KindOpen is RaceFree: the supervisor opens the file
//     itself and installs the fd with SECCOMP_IOCTL_NOTIF_ADDFD;
//   - an allow of connect (Call.Name "connect") is RaceFree: the
//     supervisor connects the target's socket, taken with pidfd_getfd;
//     sendto, sendmsg and bind allows are Advisory;
//   - an allow of execve is RaceFree only when the exec part of the
//     Landlock plan is exact (below), since the kernel then re-checks the
//     path it really executes; otherwise Advisory, as is every exec rule
//     with argv or parent conditions (argv can change after the check);
//   - every other allow on a path (stat, chdir, create, delete, rename,
//     link, attribute changes) is Advisory.
//
// Explain lists every rule with its position, kind, action and the safety
// of its allow on its main call, with a note on the calls where it is
// weaker.
//
// # Landlock plan
//
// LandlockPlan expresses the allow rules as a Landlock ruleset (pure data;
// the launcher applies it). Rights come in three classes: read
// (read_file, read_dir), write (write_file, truncate, make_*, remove_*,
// refer) and exec (execute). A class is handled when:
//
//   - the [supervisor] default is deny or kill (under allow, paths no rule
//     matches are allowed, which an allow-list cannot express);
//   - at least one rule allows that class (otherwise it is left alone: the
//     profile may not notify those calls at all);
//   - every allow rule of the class is a literal path (read, exec) or a
//     literal prefix followed by "/**" (read, write, exec). A literal write
//     path is not enough: creating or removing one file needs rights on
//     its whole directory.
//
// Each rule becomes a path-beneath grant of its literal prefix; grants of
// one path merge; PlanRule.Exact marks rights granted only by literal
// patterns, which the launcher must drop (except read_dir) when the path
// is a directory. The plan never refuses what the rules allow (up to
// symlinks and bind mounts: Landlock grants inodes) and may allow more:
// denies and argv or parent conditions stay with the supervisor. The exec
// part is exact, and exec allows RaceFree, when no exec allow has
// conditions and no deny that would win (files deny, [[exec.rule]] deny or
// kill, at least as specific as the grant) can match inside a grant. Under
// the plan the dynamic loader (e.g. /usr/lib64/ld-linux-x86-64.so.2) needs
// an exec rule too: the kernel opens it for execution.
package rules
