# A benign python3 "admin" script for the risk data: the things monitoring
# and maintenance scripts do -- read other processes' status from /proc,
# read /etc, walk and archive a tree, write and run a helper script through
# a shell, connect to a local service.
import glob, os, pwd, shutil, socket, subprocess, tarfile, tempfile
procs = 0
for st in glob.glob("/proc/[0-9]*/status"):
    try:
        with open(st) as f:
            f.read()
        procs += 1
    except OSError:
        pass
print("processes", procs)
print(pwd.getpwuid(os.getuid()).pw_name)
with open("/etc/hosts") as f:
    f.read()
d = tempfile.mkdtemp()
for root, dirs, files in os.walk("/usr/share/doc/bash"):
    for name in files:
        shutil.copy(os.path.join(root, name), d)
with tarfile.open(os.path.join(d, "docs.tgz"), "w:gz") as t:
    t.add(d, arcname="docs", filter=lambda ti: None if ti.name.endswith(".tgz") else ti)
helper = os.path.join(d, "helper.sh")
with open(helper, "w") as f:
    f.write("#!/bin/sh\ndf -h / | tail -1\n")
os.chmod(helper, 0o755)
subprocess.run([helper], check=True)
subprocess.run("ls -la %s | wc -l" % d, shell=True, check=True)
with socket.create_connection(("127.0.0.1", int(os.environ["RD_HTTP"]))) as s:
    s.sendall(b"HEAD / HTTP/1.0\r\n\r\n")
    s.recv(100)
shutil.rmtree(d)
