package risk

import (
	"strings"

	"github.com/archangel-sandbox/archangel/analyzer"
)

// Context is what the supervisor knows about a call beyond the call
// itself. The zero value means "nothing known", which the model treats as
// the cautious case only where the field says so.
type Context struct {
	// ParentExe is the executable of the caller's parent ("" if unknown).
	// The supervisor fills it from /proc/PPID/exe (or its process table).
	ParentExe string
	// Wrote reports that Path was created or opened for writing earlier by
	// this sandboxed tree. The supervisor fills it from the opens and
	// creates it carried out or saw.
	Wrote bool
	// Seen reports that this (exe, syscall, ArgClass) was seen while
	// learning: the profile allows it, or a learning run recorded it.
	Seen bool
	// TargetDescendant reports, for ptrace, process_vm_readv/writev,
	// pidfd_getfd and kill-like calls, that the target PID is a
	// descendant of the caller (a debugger's own child). The supervisor
	// fills it from its process tree; false for other calls.
	TargetDescendant bool
	// StdioSocket reports that the caller's descriptor 0, 1 or 2 is a
	// socket (the shape of a reverse shell, also of inetd-style services).
	// The supervisor fills it for exec calls at least, from
	// /proc/PID/fd/{0,1,2} reading "socket:[...]".
	StdioSocket bool
}

// pathClass is the class of a path, the features' and ArgClass's view of
// it. The order of the checks in classify is the order of precedence.
type pathClass uint8

const (
	pcNone       pathClass = iota
	pcCred                 // ~/.ssh, ~/.aws, ~/.gnupg, ~/.kube, ~/.docker/config.json, .netrc, .git-credentials, /etc/shadow, /etc/gshadow, /etc/sudoers*, ssh host keys
	pcProcMem              // /proc/PID/{mem,environ,maps,auxv,stack,syscall,pagemap} of another process
	pcProcOther            // anything else under /proc/PID of another process
	pcProcSelf             // /proc/self, /proc/thread-self, /proc/<own pid>
	pcProcSelfFD           // /proc/self/fd/N (exec or open through a descriptor)
	pcProc                 // the rest of /proc (/proc/sys, /proc/cpuinfo, ...)
	pcSys                  // /sys
	pcDevStd               // /dev/null, /dev/zero, /dev/u?random, /dev/tty, /dev/pts, /dev/fd, /dev/std*
	pcDevShm               // /dev/shm
	pcDev                  // other /dev
	pcMemfd                // "/memfd:..." (a memfd's name, exec through a descriptor)
	pcEtcCommon            // /etc files every program reads: passwd, group, hosts, resolv.conf, nsswitch.conf, localtime, ld.so.*, ssl
	pcEtc                  // other /etc
	pcBoot                 // /boot, /lib/modules, /usr/lib/modules
	pcLib                  // /lib*, /usr/lib*, /usr/local/lib*
	pcBin                  // /bin, /sbin, /usr/bin, /usr/sbin, /usr/local/bin, /usr/libexec
	pcShare                // /usr/share, /usr/include, /usr/local/share
	pcUsr                  // other /usr, /opt
	pcTmp                  // /tmp, /var/tmp
	pcHome                 // /home, /root
	pcVar                  // other /var
	pcRun                  // /run, /var/run
	pcRootDir              // "/" itself
	pcOther                // anything else
	pcRelative             // not absolute (a decode that could not resolve it)
	numPathClasses
)

var pathClassNames = [numPathClasses]string{"none", "cred", "proc-mem", "proc-other", "proc-self", "proc-self-fd", "proc",
	"sys", "dev-std", "dev-shm", "dev", "memfd", "etc-common", "etc", "boot", "lib", "bin", "share", "usr", "tmp", "home",
	"var", "run", "root", "other", "relative"}

func (p pathClass) String() string { return pathClassNames[p] }

// hasPrefixDir reports whether p is dir or below it.
func hasPrefixDir(p, dir string) bool {
	return strings.HasPrefix(p, dir) && (len(p) == len(dir) || p[len(dir)] == '/')
}

func containsSeg(p, seg string) bool { return strings.Contains(p, seg) }

// procPID parses "/proc/N/..." and returns N and the rest ("" or "/...").
func procPID(p string) (pid int, rest string, ok bool) {
	s := p[len("/proc/"):]
	n := 0
	i := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		n = n*10 + int(s[i]-'0')
		if n > 1<<30 {
			return 0, "", false
		}
	}
	if i == 0 || (i < len(s) && s[i] != '/') {
		return 0, "", false
	}
	return n, s[i:], true
}

func isProcMemFile(rest string) bool {
	switch rest {
	case "/mem", "/environ", "/maps", "/smaps", "/auxv", "/stack", "/syscall", "/pagemap":
		return true
	}
	return strings.HasPrefix(rest, "/task/") && (strings.HasSuffix(rest, "/mem") || strings.HasSuffix(rest, "/environ"))
}

// classify returns the class of path p for a call by pid.
func classify(p string, pid int) pathClass {
	switch {
	case p == "":
		return pcNone
	case p[0] != '/':
		if strings.HasPrefix(p, "memfd:") {
			return pcMemfd
		}
		return pcRelative
	case p == "/":
		return pcRootDir
	case strings.HasPrefix(p, "/memfd:"):
		return pcMemfd
	case containsSeg(p, "/.ssh/") || strings.HasSuffix(p, "/.ssh") || containsSeg(p, "/.aws/") || containsSeg(p, "/.gnupg/") ||
		containsSeg(p, "/.kube/") || strings.HasSuffix(p, "/.docker/config.json") || strings.HasSuffix(p, "/.netrc") ||
		strings.HasSuffix(p, "/.git-credentials") || p == "/etc/shadow" || p == "/etc/gshadow" || p == "/etc/shadow-" ||
		hasPrefixDir(p, "/etc/sudoers") || strings.HasPrefix(p, "/etc/sudoers.d") ||
		(strings.HasPrefix(p, "/etc/ssh/ssh_host_") && strings.HasSuffix(p, "_key")):
		return pcCred
	case strings.HasPrefix(p, "/proc/"):
		if strings.HasPrefix(p, "/proc/self/fd/") || strings.HasPrefix(p, "/proc/thread-self/fd/") {
			return pcProcSelfFD
		}
		if hasPrefixDir(p, "/proc/self") || hasPrefixDir(p, "/proc/thread-self") {
			return pcProcSelf
		}
		n, rest, ok := procPID(p)
		if !ok {
			return pcProc
		}
		if n == pid && pid != 0 {
			if strings.HasPrefix(rest, "/fd/") {
				return pcProcSelfFD
			}
			return pcProcSelf
		}
		if isProcMemFile(rest) {
			return pcProcMem
		}
		return pcProcOther
	case p == "/proc":
		return pcProc
	case hasPrefixDir(p, "/sys"):
		return pcSys
	case hasPrefixDir(p, "/dev/shm"):
		return pcDevShm
	case p == "/dev/null" || p == "/dev/zero" || p == "/dev/random" || p == "/dev/urandom" || p == "/dev/tty" ||
		hasPrefixDir(p, "/dev/pts") || hasPrefixDir(p, "/dev/fd") || strings.HasPrefix(p, "/dev/std"):
		return pcDevStd
	case hasPrefixDir(p, "/dev"):
		return pcDev
	case hasPrefixDir(p, "/etc"):
		switch {
		case p == "/etc/passwd" || p == "/etc/group" || p == "/etc/hosts" || p == "/etc/resolv.conf" ||
			p == "/etc/nsswitch.conf" || p == "/etc/localtime" || p == "/etc/host.conf" || p == "/etc/gai.conf" ||
			strings.HasPrefix(p, "/etc/ld.so") || hasPrefixDir(p, "/etc/ssl") || hasPrefixDir(p, "/etc/ca-certificates"):
			return pcEtcCommon
		}
		return pcEtc
	case hasPrefixDir(p, "/boot") || hasPrefixDir(p, "/lib/modules") || hasPrefixDir(p, "/usr/lib/modules"):
		return pcBoot
	case hasPrefixDir(p, "/bin") || hasPrefixDir(p, "/sbin") || hasPrefixDir(p, "/usr/bin") || hasPrefixDir(p, "/usr/sbin") ||
		hasPrefixDir(p, "/usr/local/bin") || hasPrefixDir(p, "/usr/libexec"):
		return pcBin
	case strings.HasPrefix(p, "/lib") || strings.HasPrefix(p, "/usr/lib") || strings.HasPrefix(p, "/usr/local/lib"):
		return pcLib
	case hasPrefixDir(p, "/usr/share") || hasPrefixDir(p, "/usr/include") || hasPrefixDir(p, "/usr/local/share"):
		return pcShare
	case hasPrefixDir(p, "/usr") || hasPrefixDir(p, "/opt"):
		return pcUsr
	case hasPrefixDir(p, "/tmp") || hasPrefixDir(p, "/var/tmp"):
		return pcTmp
	case hasPrefixDir(p, "/home") || hasPrefixDir(p, "/root"):
		return pcHome
	case hasPrefixDir(p, "/run") || hasPrefixDir(p, "/var/run"):
		return pcRun
	case hasPrefixDir(p, "/var"):
		return pcVar
	}
	return pcOther
}

// progClass is the class of a program (an exec target, the caller, its
// parent), from its base name.
type progClass uint8

const (
	prNone     progClass = iota
	prShell              // sh, bash, dash, zsh, ksh, busybox
	prInterp             // python*, perl*, ruby*, node, php*, lua*, tclsh, awk variants
	prNet                // nc, ncat, netcat, socat, telnet, curl, wget, ssh, scp
	prBuild              // cc, gcc, g++, clang, ld, as, make, go, cargo, rustc, git
	prDebug              // gdb, strace, ltrace
	prPriv               // sudo, su, unshare, nsenter, mount, insmod, modprobe, setpriv, chroot
	prCoreutil           // any other program under a system bin directory
	prOther              // a program outside the system bin directories
	numProgClasses
)

var progClassNames = [numProgClasses]string{"none", "shell", "interp", "net", "build", "debug", "priv", "system", "other"}

func (p progClass) String() string { return progClassNames[p] }

func base(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

func dir(p string) string {
	if i := strings.LastIndexByte(p, '/'); i > 0 {
		return p[:i]
	}
	return "/"
}

// trimVersion strips a trailing version from a program name: "python3.11"
// -> "python", "perl5.36.0" -> "perl", "gcc-12" -> "gcc".
func trimVersion(b string) string {
	i := len(b)
	for i > 0 {
		c := b[i-1]
		if (c >= '0' && c <= '9') || c == '.' || c == '-' {
			i--
			continue
		}
		break
	}
	if i == 0 {
		return b
	}
	return b[:i]
}

func progOf(exe string) progClass {
	if exe == "" {
		return prNone
	}
	switch trimVersion(base(exe)) {
	case "sh", "bash", "dash", "zsh", "ksh", "busybox", "ash", "fish", "csh", "tcsh":
		return prShell
	case "python", "perl", "ruby", "node", "nodejs", "php", "lua", "tclsh", "awk", "gawk", "mawk", "deno", "bun":
		return prInterp
	case "nc", "ncat", "netcat", "nc.openbsd", "nc.traditional", "socat", "telnet", "curl", "wget", "ssh", "scp", "sftp":
		return prNet
	case "cc", "gcc", "g++", "c++", "clang", "ld", "ld.bfd", "ld.gold", "as", "make", "go", "cargo", "rustc", "git", "cc1", "collect", "compile", "link", "vet", "asm":
		return prBuild
	case "gdb", "strace", "ltrace", "lldb":
		return prDebug
	case "sudo", "su", "unshare", "nsenter", "mount", "umount", "insmod", "modprobe", "rmmod", "setpriv", "chroot", "capsh", "doas":
		return prPriv
	}
	switch classify(exe, 0) {
	case pcBin, pcLib:
		return prCoreutil
	}
	return prOther
}

// Feature groups. Each feature is a token: a group and up to three small
// integer values, hashed into the weight vector (hashing trick; Dim
// weights). Every group below is documented with what it encodes.
const (
	gBias          = iota // always on
	gKind                 // decoded kind
	gPath                 // class of Path
	gPath2                // class of Path2 (rename/link/symlink target) × kind
	gModeX                // class of Path × "creation or chmod mode has execute bits"
	gWrote                // Context.Wrote × access
	gExecTarget           // exec: program class of the target × class of its path
	gExecArgc             // exec: argc bucket (0, 1, 2, 3-4, 5-8, 9+)
	gExecArgv             // exec: argv shape flags, one token each (see argvFlags)
	gExecParent           // exec: caller's program class × target's program class
	gAddr                 // address family × scope (loopback, private, link-local, public, unspecified, unix kinds)
	gPort                 // port class (0, <1024, 1024-32767, >=32768) × family
	gUnixPath             // AF_UNIX path class
	gProt                 // mmap/mprotect/pkey_mprotect: syscall × prot bits (R, W, X) × anonymous
	gWX                   // mapping both writable and executable
	gNS                   // clone/unshare/setns: one token per CLONE_NEW* bit, × syscall
	gCloneThread          // clone: CLONE_THREAD set or not
	gPtrace               // ptrace: request bucket × Context.TargetDescendant
	gProcVM               // process_vm_readv/writev, pidfd_getfd: × Context.TargetDescendant
	gMemfd                // memfd_create: MFD_CLOEXEC, MFD_ALLOW_SEALING, MFD_NOEXEC_SEAL, MFD_EXEC bits
	gDup                  // dup2/dup3: newfd is 0, 1 or 2
	gSocket               // socket: domain × type
	gMountFlags           // mount: one token per MS_* bit in the low 24 bits
	gSetID                // setuid family: target 0 or not
	gPrctl                // prctl option (args[0] < 128)
	gPersona              // personality value bucket
	gExe                  // caller: program class × class of its executable's path
	gExeDeleted           // caller's executable is deleted, a memfd, or under a temp directory
	gParentClass          // the parent's program class (Context.ParentExe)
	gSeen                 // Context.Seen
	gTrunc                // a truncated path or argv
	gOwnDir               // Path is under the directory of the caller's executable (its own files), × access
	gHidden               // Path has a component starting with "." × class of Path
	gKill                 // kill/tgkill with a target outside the tree (not TargetDescendant) and a fatal signal
	gSysPrev              // prevalence bucket of the syscall among benign training workloads (see prevBucket)
	gClassPrev            // prevalence bucket of the argument class (argClassKey) among benign training workloads
	gClassPrevKind        // that bucket × kind
	gClassPrevSeen        // that bucket × Context.Seen
	gKernelIface          // a privileged kernel interface (see kernelIface), one token for all of them
	gForeignProc          // reaches into a process that is not a descendant: ptrace, process_vm_*, pidfd_getfd, /proc/PID/{mem,environ,maps,...}
	gExecWritable         // exec of a program outside the system directories (temp, /dev/shm, home, memfd, /proc/self/fd) × Context.Wrote
	gExecFileless         // exec through a descriptor: a memfd or /proc/self/fd/N
	gStdioSocket          // Context.StdioSocket × kind × (exec: target's program class)
	numGroups
)

// Groups measured and left out (a leave-one-technique-out ablation): the
// syscall number, syscall × path class, path class × access, open flags ×
// path class, Wrote × syscall, caller class × syscall, parent class ×
// caller class, syscall × address, Seen × syscall and × path class, comm
// mismatch, uid/euid. They let the model memorise the few hostile
// programs (their syscall mix, their parents) instead of what they do:
// without them, on an earlier version of the dataset and trainer, mean
// ROC AUC rose from 0.930 to 0.967 and variant recall at 1e-3 FPR from
// 0.33 to 0.65.

var groupNames = [numGroups]string{"bias", "kind", "path", "path2", "mode+x", "wrote", "exec-target", "exec-argc", "exec-argv",
	"exec-parent", "addr", "port", "unix-path", "prot", "W+X", "namespace", "clone-thread", "ptrace", "process-vm", "memfd",
	"dup-stdio", "socket", "mount-flags", "setid", "prctl", "personality", "exe", "exe-deleted", "parent", "seen", "truncated",
	"own-dir", "hidden", "kill", "syscall-prevalence", "class-prevalence", "class-prevalence×kind", "class-prevalence×seen",
	"kernel-interface", "foreign-process", "exec-writable", "exec-fileless", "stdio-socket"}

// maxFeatures bounds the tokens one call produces (the argv flags and
// namespace bits are the variable part).
const maxFeatures = 64

// featureSet is the tokens of one call, on the stack.
type featureSet struct {
	n   int
	tok [maxFeatures]uint64
}

func (f *featureSet) add(group int, a, b, c uint64) {
	if f.n < maxFeatures {
		f.tok[f.n] = uint64(group)<<56 | (a&0xffff)<<32 | (b&0xffff)<<16 | c&0xffff
		f.n++
	}
}

// index maps a token to a weight index.
func index(tok uint64, dim int) int {
	// splitmix64's finaliser: a fixed, well-mixed hash.
	z := tok + 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	z ^= z >> 31
	return int(z % uint64(dim))
}

// Syscall numbers (x86-64) of the scalar calls the features read.
const (
	nrMmap         = 9
	nrMprotect     = 10
	nrDup2         = 33
	nrSocket       = 41
	nrClone        = 56
	nrKill         = 62
	nrPtrace       = 101
	nrSetuid       = 105
	nrSetgid       = 106
	nrSetreuid     = 113
	nrSetregid     = 114
	nrSetresuid    = 117
	nrSetresgid    = 119
	nrSetfsuid     = 122
	nrPersonality  = 135
	nrPrctl        = 157
	nrMount        = 165
	nrInitModule   = 175
	nrTgkill       = 234
	nrUnshare      = 272
	nrDup3         = 292
	nrProcVMReadv  = 310
	nrProcVMWritev = 311
	nrFinitModule  = 313
	nrMemfdCreate  = 319
	nrPkeyMprotect = 329
	nrPidfdGetfd   = 438
	nrChmod        = 90
	nrFchmod       = 91
	nrFchmodat     = 268
	nrFchmodat2    = 452
)

// Namespace bits of clone/unshare/setns flags.
var nsBits = [...]uint64{0x00020000 /* NEWNS */, 0x02000000 /* NEWCGROUP */, 0x04000000 /* NEWUTS */, 0x08000000, /* NEWIPC */
	0x10000000 /* NEWUSER */, 0x20000000 /* NEWPID */, 0x40000000 /* NEWNET */, 0x00000080 /* NEWTIME */}

func argcBucket(n int) uint64 {
	switch {
	case n <= 2:
		return uint64(n)
	case n <= 4:
		return 3
	case n <= 8:
		return 4
	}
	return 5
}

// argvFlags are the exec argv shape tokens.
const (
	avDashC        = iota // an argument is "-c" (a command string for a shell or interpreter)
	avDashI               // an argument is "-i" (interactive)
	avDevTCP              // an argument mentions /dev/tcp or /dev/udp
	avIPPort              // an argument looks like an IPv4 address or host:port
	avArgv0Differ         // argv[0] is not the target's base name (nor a path ending in it)
	avArgv0Bracket        // argv[0] starts with "[" (a kernel thread's name)
	avLongArg             // an argument longer than 256 bytes (inline scripts, encoded payloads)
	avPipeShell           // an argument contains "|" followed later by "sh" (pipe into a shell)
	avNoArgv0             // empty argv
)

func looksIPPort(s string) bool {
	dots, digits, colon := 0, 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.':
			dots++
		case c == ':':
			colon = true
		default:
			if dots == 3 && digits >= 4 {
				return true
			}
			dots, digits = 0, 0
		}
	}
	return (dots == 3 && digits >= 4) || (colon && digits >= 2 && dots == 3)
}

func addArgv(f *featureSet, c *analyzer.Call) {
	if len(c.Argv) == 0 {
		f.add(gExecArgv, avNoArgv0, 0, 0)
		return
	}
	a0 := c.Argv[0]
	if b := base(c.Path); a0 != b && base(a0) != b {
		f.add(gExecArgv, avArgv0Differ, 0, 0)
	}
	if strings.HasPrefix(a0, "[") {
		f.add(gExecArgv, avArgv0Bracket, 0, 0)
	}
	var seen [avNoArgv0]bool
	for _, a := range c.Argv[1:] {
		switch a {
		case "-c":
			seen[avDashC] = true
		case "-i":
			seen[avDashI] = true
		}
		if strings.Contains(a, "/dev/tcp/") || strings.Contains(a, "/dev/udp/") {
			seen[avDevTCP] = true
		}
		if looksIPPort(a) {
			seen[avIPPort] = true
		}
		if len(a) > 256 {
			seen[avLongArg] = true
		}
		if i := strings.IndexByte(a, '|'); i >= 0 && strings.Contains(a[i:], "sh") {
			seen[avPipeShell] = true
		}
	}
	for i, s := range seen {
		if s {
			f.add(gExecArgv, uint64(i), 0, 0)
		}
	}
}

// Address scopes.
const (
	scNone = iota
	scLoopback
	scPrivate
	scLinkLocal
	scPublic
	scUnspecified
	scMulticast
	scUnixPath
	scUnixAbstract
	scUnixUnnamed
	scOtherFamily
)

func addrScope(a *analyzer.SockAddr) uint64 {
	switch {
	case a == nil:
		return scNone
	case a.Family == 1:
		switch {
		case a.Unnamed:
			return scUnixUnnamed
		case a.Abstract:
			return scUnixAbstract
		}
		return scUnixPath
	case !a.Addr.IsValid():
		return scOtherFamily
	}
	ip := a.Addr.Addr().Unmap()
	switch {
	case ip.IsLoopback():
		return scLoopback
	case ip.IsUnspecified():
		return scUnspecified
	case ip.IsPrivate():
		return scPrivate
	case ip.IsLinkLocalUnicast():
		return scLinkLocal
	case ip.IsMulticast():
		return scMulticast
	}
	return scPublic
}

func portClass(p uint16) uint64 {
	switch {
	case p == 0:
		return 0
	case p < 1024:
		return 1
	case p < 32768:
		return 2
	}
	return 3
}

func protBits(prot uint64) uint64 { return prot & 7 }

// PrevDim is the size of the prevalence table: for hashed syscall and
// argument-class keys, how many benign training workloads produced them.
const PrevDim = 1 << 16

// prevBucket buckets a prevalence count: 0, 1, 2-3, 4 or more workloads.
func prevBucket(n uint8) uint64 {
	switch {
	case n == 0:
		return 0
	case n == 1:
		return 1
	case n <= 3:
		return 2
	}
	return 3
}

// sysKey and argClassKey are the prevalence table's keys for c: its
// syscall, and its argument class (the integer form of ArgClass without
// the executable: syscall with path class and access, address family,
// scope and port class, prot bits, namespace bits, ptrace request, or
// dup onto stdio).
func sysKey(c *analyzer.Call) int { return index(1<<63|uint64(uint32(c.Nr)), PrevDim) }

func argClassKey(c *analyzer.Call) int {
	nr := uint64(uint32(c.Nr))
	var a, b, d uint64
	switch {
	case c.Kind == analyzer.KindExec:
		a, b = uint64(classify(c.Path, c.Process.PID)), uint64(progOf(c.Path))
	case c.Addr != nil:
		a, b = uint64(c.Addr.Family), addrScope(c.Addr)
		if c.Addr.Addr.IsValid() {
			d = portClass(c.Addr.Addr.Port())
		}
	case c.Path != "":
		a, b = uint64(classify(c.Path, c.Process.PID)), uint64(c.Access)
	default:
		switch c.Nr {
		case nrMmap:
			a, b = c.Args[2]&7, c.Args[3]>>5&1
		case nrMprotect, nrPkeyMprotect:
			a = c.Args[2] & 7
		case nrClone, nrUnshare:
			a = c.Args[0] >> 17 & 0x3fff
		case 308:
			a = c.Args[1] >> 17 & 0x3fff
		case nrPtrace:
			a = c.Args[0] & 0xffff
		case nrDup2, nrDup3:
			a = b2u(c.Args[1] <= 2)
		}
	}
	return index(1<<62|nr<<48|(a&0xffff)<<32|(b&0xffff)<<16|d&0xffff, PrevDim)
}

// addPrevalence adds the prevalence tokens of c, given its keys, from the
// table prev (nil: every count 0). own is 1 when the call's own workload
// is among the counted ones (a benign training event), so that training
// sees what a new workload will: the count of the other workloads.
func addPrevalence(f *featureSet, kind analyzer.Kind, seen bool, sk, ck int, prev []uint8, own uint8) {
	var ns, nc uint8
	if prev != nil {
		ns, nc = prev[sk]-min(own, prev[sk]), prev[ck]-min(own, prev[ck])
	}
	f.add(gSysPrev, prevBucket(ns), 0, 0)
	f.add(gClassPrev, prevBucket(nc), 0, 0)
	f.add(gClassPrevKind, prevBucket(nc), uint64(kind), 0)
	f.add(gClassPrevSeen, prevBucket(nc), b2u(seen), 0)
}

// features fills f with the tokens of c in context ctx, except the
// prevalence tokens (addPrevalence). It allocates nothing.
func features(f *featureSet, c *analyzer.Call, ctx *Context) {
	f.n = 0
	nr := uint64(uint32(c.Nr))
	pc := classify(c.Path, c.Process.PID)
	acc := uint64(c.Access)
	f.add(gBias, 0, 0, 0)
	f.add(gKind, uint64(c.Kind), 0, 0)
	if c.Path != "" {
		f.add(gPath, uint64(pc), 0, 0)
		if ed := c.Process.Exe; ed != "" && classify(ed, 0) != pcBin && hasPrefixDir(c.Path, dir(ed)) {
			f.add(gOwnDir, acc, 0, 0)
		}
		if strings.Contains(c.Path, "/.") {
			f.add(gHidden, uint64(pc), 0, 0)
		}
	}
	if c.Path2 != "" {
		f.add(gPath2, uint64(classify(c.Path2, c.Process.PID)), uint64(c.Kind), 0)
	}
	if c.Kind == analyzer.KindOpen {
		const oCreat = 0o100
		if c.Flags&oCreat != 0 && c.Mode&0o111 != 0 {
			f.add(gModeX, uint64(pc), 0, 0)
		}
	}
	switch c.Nr {
	case nrChmod:
		if c.Args[1]&0o111 != 0 {
			f.add(gModeX, uint64(pc), 1, 0)
		}
	case nrFchmodat, nrFchmodat2:
		if c.Args[2]&0o111 != 0 {
			f.add(gModeX, uint64(pc), 1, 0)
		}
	case nrFchmod:
		if c.Args[1]&0o111 != 0 {
			f.add(gModeX, uint64(pcNone), 1, 0)
		}
	}
	if ctx.Wrote {
		f.add(gWrote, acc, 0, 0)
	}

	caller := progOf(c.Process.Exe)
	if c.Kind == analyzer.KindExec {
		target := progOf(c.Path)
		f.add(gExecTarget, uint64(target), uint64(pc), 0)
		f.add(gExecArgc, argcBucket(len(c.Argv)), 0, 0)
		f.add(gExecParent, uint64(caller), uint64(target), 0)
		addArgv(f, c)
	}

	if c.Addr != nil {
		sc := addrScope(c.Addr)
		f.add(gAddr, uint64(c.Addr.Family), sc, 0)
		if c.Addr.Addr.IsValid() {
			f.add(gPort, portClass(c.Addr.Addr.Port()), uint64(c.Addr.Family), 0)
		}
		if c.Addr.Family == 1 && c.Addr.Unix != "" && !c.Addr.Abstract {
			f.add(gUnixPath, uint64(classify(c.Addr.Unix, c.Process.PID)), 0, 0)
		}
	}

	switch c.Nr {
	case nrMmap, nrMprotect, nrPkeyMprotect:
		prot := c.Args[2]
		anon := uint64(0)
		if c.Nr == nrMmap && c.Args[3]&0x20 != 0 { // MAP_ANONYMOUS
			anon = 1
		}
		f.add(gProt, nr, protBits(prot), anon)
		if prot&6 == 6 {
			f.add(gWX, nr, anon, 0)
		}
	case nrClone, nrUnshare:
		fl := c.Args[0]
		for i, b := range nsBits {
			if fl&b != 0 {
				f.add(gNS, nr, uint64(i), 0)
			}
		}
		if c.Nr == nrClone {
			f.add(gCloneThread, (fl>>16)&1, 0, 0) // CLONE_THREAD is 0x10000
		}
	case 308: // setns: nstype in args[1]
		for i, b := range nsBits {
			if c.Args[1]&b != 0 {
				f.add(gNS, nr, uint64(i), 0)
			}
		}
	case nrPtrace:
		req := c.Args[0]
		if req > 0x4300 {
			req = 0x4300 + req&0xff
		}
		f.add(gPtrace, req&0xffff, b2u(ctx.TargetDescendant), 0)
		f.add(gPtrace, 0xffff, b2u(ctx.TargetDescendant), 0)
	case nrProcVMReadv, nrProcVMWritev, nrPidfdGetfd:
		f.add(gProcVM, nr, b2u(ctx.TargetDescendant), 0)
	case nrMemfdCreate:
		f.add(gMemfd, c.Args[1]&0x1f, 0, 0)
	case nrDup2, nrDup3:
		if c.Args[1] <= 2 {
			f.add(gDup, c.Args[1], 0, 0)
		}
	case nrSocket:
		f.add(gSocket, c.Args[0]&0xff, c.Args[1]&0xf, 0)
	case nrMount:
		fl := c.Args[3]
		for i := uint64(0); i < 24; i++ {
			if fl&(1<<i) != 0 {
				f.add(gMountFlags, i, 0, 0)
			}
		}
	case nrSetuid, nrSetgid, nrSetfsuid:
		f.add(gSetID, nr, b2u(c.Args[0] == 0), 0)
	case nrSetreuid, nrSetregid, nrSetresuid, nrSetresgid:
		f.add(gSetID, nr, b2u(c.Args[0] == 0 || c.Args[1] == 0), 0)
	case nrPrctl:
		if c.Args[0] < 128 {
			f.add(gPrctl, c.Args[0], 0, 0)
		}
	case nrPersonality:
		f.add(gPersona, c.Args[0]&0xffff, c.Args[0]>>16&0xff, 0)
	case nrKill, nrTgkill:
		sig := c.Args[1]
		if c.Nr == nrTgkill {
			sig = c.Args[2]
		}
		if !ctx.TargetDescendant && (sig == 9 || sig == 19) {
			f.add(gKill, sig, 0, 0)
		}
	}

	if ctx.StdioSocket {
		t := uint64(prNone)
		if c.Kind == analyzer.KindExec {
			t = uint64(progOf(c.Path))
		}
		f.add(gStdioSocket, uint64(c.Kind), t, 0)
		f.add(gStdioSocket, 0xffff, 0, 0)
	}
	if kernelIface(c, ctx) {
		f.add(gKernelIface, 0, 0, 0)
	}
	switch {
	case (c.Nr == nrPtrace && c.Args[0] != 0) || c.Nr == nrProcVMReadv || c.Nr == nrProcVMWritev || c.Nr == nrPidfdGetfd:
		if !ctx.TargetDescendant {
			f.add(gForeignProc, 0, 0, 0)
		}
	case pc == pcProcMem:
		f.add(gForeignProc, 1, 0, 0)
	}
	if c.Kind == analyzer.KindExec {
		switch pc {
		case pcBin, pcLib, pcUsr, pcShare:
		case pcMemfd, pcProcSelfFD:
			f.add(gExecFileless, 0, 0, 0)
			f.add(gExecWritable, b2u(ctx.Wrote), 0, 0)
		default:
			f.add(gExecWritable, b2u(ctx.Wrote), 0, 0)
		}
	}

	exeClass := classify(c.Process.Exe, 0)
	f.add(gExe, uint64(caller), uint64(exeClass), 0)
	if exeClass == pcTmp || exeClass == pcDevShm || exeClass == pcMemfd || strings.HasSuffix(c.Process.Exe, " (deleted)") {
		f.add(gExeDeleted, uint64(exeClass), 0, 0)
	}
	f.add(gParentClass, uint64(progOf(ctx.ParentExe)), 0, 0)
	f.add(gSeen, b2u(ctx.Seen), 0, 0)
	if c.Truncated {
		f.add(gTrunc, 0, 0, 0)
	}
}

// kernelIface reports whether c uses one of the kernel interfaces ordinary
// programs do not need, whose use is a privilege or sandbox-escape step:
// mounting, modules, kexec, bpf, namespaces (unshare/clone/setns with a
// CLONE_NEW* bit), setuid to root, personality with READ_IMPLIES_EXEC,
// keyrings, raw I/O ports, userfaultfd, perf, open_by_handle_at, swap,
// reboot, chroot and pivot_root, and tracing a process that is not a
// descendant.
func kernelIface(c *analyzer.Call, ctx *Context) bool {
	switch c.Nr {
	case nrMount, 166 /* umount2 */, 155 /* pivot_root */, 161 /* chroot */, nrInitModule, nrFinitModule, 176, /* delete_module */
		246, 320 /* kexec */, 321 /* bpf */, 248, 249, 250 /* add_key request_key keyctl */, 172, 173 /* iopl ioperm */, 323, /* userfaultfd */
		298 /* perf_event_open */, 304 /* open_by_handle_at */, 167, 168 /* swapon swapoff */, 169, /* reboot */
		428, 429, 430, 431, 432, 433 /* open_tree move_mount fsopen fsconfig fsmount fspick */ :
		return true
	case nrUnshare:
		return c.Args[0]&nsMask != 0
	case nrClone:
		return c.Args[0]&nsMask != 0
	case 308: // setns
		return true
	case nrSetuid, nrSetfsuid:
		return c.Args[0] == 0 && c.Process.EUID != 0
	case nrSetreuid, nrSetresuid:
		return (c.Args[0] == 0 || c.Args[1] == 0) && c.Process.EUID != 0
	case nrPersonality:
		return c.Args[0] != 0xffffffff && c.Args[0]&0x0400000 != 0
	case nrPtrace:
		return !ctx.TargetDescendant && c.Args[0] != 0 // PTRACE_TRACEME (0) is the tracee's side
	}
	return false
}

// nsMask is every CLONE_NEW* bit.
const nsMask = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x00000080

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
