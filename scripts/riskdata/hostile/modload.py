# modload (python): finit_module (313) on a file that is not a module; the
# kernel refuses it.
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
p = "/tmp/.rd-fake2.ko"
with open(p, "wb") as f:
    f.write(b"\x7fELF not really a module\n")
os.path.exists("/archangel-riskdata/begin/modload")
fd = os.open(p, os.O_RDONLY)
libc.syscall(313, fd, b"", 0)
os.close(fd)
libc.syscall(175, b"xx", 2, b"")
os.path.exists("/archangel-riskdata/end")
os.unlink(p)
