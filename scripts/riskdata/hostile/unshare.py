# unshare (python): os.unshare (3.12+) or ctypes, then mount(2) by ctypes.
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNS, CLONE_NEWUSER = 0x00020000, 0x10000000
os.path.exists("/archangel-riskdata/begin/unshare")
libc.unshare(CLONE_NEWUSER | CLONE_NEWNS)
libc.mount(b"none", b"/", None, 0x4000 | 0x40000, None)
libc.mount(b"rd", b"/var/tmp", b"tmpfs", 0, b"size=1m")
os.path.exists("/archangel-riskdata/end")
