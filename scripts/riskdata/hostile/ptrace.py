# ptrace (python): attach to a sibling with ctypes (PTRACE_ATTACH = 16,
# PTRACE_DETACH = 17).
import ctypes, os, subprocess
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
sib = subprocess.Popen(["sleep", "5"])
pid = os.fork()
if pid == 0:
    os.path.exists("/archangel-riskdata/begin/ptrace")
    libc.ptrace(16, sib.pid, None, None)
    libc.ptrace(17, sib.pid, None, None)
    os.path.exists("/archangel-riskdata/end")
    os._exit(0)
os.waitpid(pid, 0)
sib.kill()
sib.wait()
