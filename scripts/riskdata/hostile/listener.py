# Not a technique: the loopback listener the revshell variants connect to
# (run outside archangel). Accepts one connection on 127.0.0.1:PORT, sends a
# few commands, reads until the shell exits, gives up after 10 s.
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(1)
s.settimeout(10)
print("ready", flush=True)
try:
    c, _ = s.accept()
    c.settimeout(10)
    c.sendall(b"id\nuname -a\ncat /etc/hostname\nexit\n")
    while c.recv(4096):
        pass
except OSError:
    pass
