# credread (python): walk ~/.ssh and ~/.aws, read every file, and read the
# environment of a sibling process.
import glob, os, subprocess
home = os.environ["HOME"]
sib = subprocess.Popen(["sleep", "5"])
os.path.exists("/archangel-riskdata/begin/credread")
for p in glob.glob(home + "/.ssh/*") + glob.glob(home + "/.aws/*"):
    with open(p, "rb") as f:
        f.read()
try:
    with open("/proc/%d/environ" % sib.pid, "rb") as f:
        f.read()
except OSError:
    pass
os.path.exists("/archangel-riskdata/end")
sib.kill()
sib.wait()
