# wx (python): an RWX anonymous mapping through the mmap module, then a call
# into it with ctypes.
import ctypes, mmap, os
os.path.exists("/archangel-riskdata/begin/wx")
m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
m.write(b"\xc3")
addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
ctypes.CFUNCTYPE(None)(addr)()
os.path.exists("/archangel-riskdata/end")
