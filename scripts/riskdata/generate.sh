#!/usr/bin/env bash
# Regenerates analyzer/risk/testdata/events.jsonl.gz, the risk model's
# training and evaluation data (`make riskdata`; needs root for the
# unshare/ptrace/module techniques to reach the kernel, and the programs
# scripts/setup.sh installs).
#
# Every workload runs under `archangel learn --profile scripts/riskdata/base.toml
# --events`, which lets everything run and records each call the base
# profile leaves to the supervisor, decoded (paths, addresses, argv, flags).
# Benign workloads are real programs doing ordinary work; hostile workloads
# are the small programs in hostile/ (C built here with gcc, python3, perl,
# shell), one technique each, several variants per technique. Nothing leaves
# the machine: servers and listeners are on 127.0.0.1, secrets are fakes in
# a temporary HOME, the "kernel module" is text the kernel rejects.
#
# Labelling (done by `go run ./scripts/riskdata/compact`, see README.md):
# a hostile program stats /archangel-riskdata/begin/TECHNIQUE just before
# its hostile part and /archangel-riskdata/end after it (the paths do not
# exist). Events from that process and its descendants between the two are
# labelled with the technique, less what any program does to load itself;
# the rest of a hostile workload is dropped, never labelled benign. All
# events of benign workloads are benign.
#
# Output is deterministic apart from what the workloads themselves vary
# (PIDs, timing, temp names): workloads run one at a time in a fixed order.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=${OUT:-$ROOT/analyzer/risk/testdata/events.jsonl.gz}
ARCHANGEL=${ARCHANGEL:-}
WORK=$(mktemp -d /tmp/archangel-riskdata.XXXXXX)
EV=$WORK/events
mkdir -p "$EV" "$WORK/bin" "$WORK/home" "$WORK/www" "$WORK/learned"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "$ARCHANGEL" ]; then
	ARCHANGEL=$WORK/archangel
	go build -o "$ARCHANGEL" ./cmd/archangel
fi
PY=/usr/bin/python3
BASE=$ROOT/scripts/riskdata/base.toml
HOST=$ROOT/scripts/riskdata/hostile

# A fake HOME with the secrets the credential techniques go after.
export HOME=$WORK/home
mkdir -p "$HOME/.ssh" "$HOME/.aws"
printf -- '-----BEGIN OPENSSH PRIVATE KEY-----\nZmFrZSBrZXkgZm9yIGFyY2hhbmdlbCByaXNrIGRhdGE=\n-----END OPENSSH PRIVATE KEY-----\n' >"$HOME/.ssh/id_rsa"
printf '[default]\naws_access_key_id = AKIAFAKEFAKEFAKE\naws_secret_access_key = fake\n' >"$HOME/.aws/credentials"
chmod 600 "$HOME/.ssh/id_rsa" "$HOME/.aws/credentials"
git config --global user.email rd@example.invalid
git config --global user.name riskdata
export GOFLAGS=-mod=mod GOTOOLCHAIN=local

# record NAME CMD...: run CMD under learning, events to $EV/NAME.jsonl.
record() {
	local name=$1
	shift
	echo "riskdata: $name" >&2
	# Each workload starts in its own directory under the work tree, so
	# that no kind of workload has a working directory of its own (the
	# repository, say) for the model to tell it by.
	mkdir -p "$WORK/cwd/$name"
	(cd "$WORK/cwd/$name" && exec "$ARCHANGEL" learn --profile "$BASE" --out "$WORK/learned/$name.toml" --events "$EV/$name.jsonl" -- "$@" >/dev/null 2>"$WORK/learned/$name.err") ||
		echo "riskdata: $name exited $? (kept: the attempt is the data)" >&2
}

# Loopback servers used by both kinds of workload (not recorded).
HTTP=18000
gcc -O1 -o "$WORK/www/payload" "$HOST/payload.c"
printf 'hello from the riskdata web server\n' >"$WORK/www/index.html"
printf '#!/bin/sh\necho "installing into $1"\nmkdir -p "$1/bin" && cp "$1/tool" "$1/bin/"\n' >"$WORK/www/install.sh"
head -c 200000 /dev/urandom | base64 >"$WORK/www/data.txt"
(cd "$WORK/www" && exec $PY -m http.server --bind 127.0.0.1 "$HTTP" >/dev/null 2>&1) &
pids+=($!)
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$HTTP/" && break; sleep 0.1; done
export RD_HTTP=$HTTP RD_PAYLOAD=$WORK/www/payload

# ---------------------------------------------------------------- benign
W=$WORK/w
mkdir -p "$W"

cat >"$W/stdlib.py" <<'EOF'
import json, re, hashlib, os, tempfile, subprocess, sqlite3, zipfile, csv, shutil, glob
d = tempfile.mkdtemp()
data = [{"id": i, "name": "item%d" % i, "tags": ["a", "b"][: i % 3]} for i in range(500)]
p = os.path.join(d, "data.json")
with open(p, "w") as f:
    json.dump(data, f)
with open(p) as f:
    back = json.load(f)
print(hashlib.sha256(open(p, "rb").read()).hexdigest())
print(len([x for x in back if re.match(r"item\d*7$", x["name"])]))
db = sqlite3.connect(os.path.join(d, "db.sqlite"))
db.execute("create table t (id int, name text)")
db.executemany("insert into t values (?, ?)", [(x["id"], x["name"]) for x in data])
db.commit()
print(db.execute("select count(*) from t").fetchone())
with zipfile.ZipFile(os.path.join(d, "a.zip"), "w") as z:
    z.write(p, "data.json")
with open(os.path.join(d, "a.csv"), "w", newline="") as f:
    csv.writer(f).writerows([[x["id"], x["name"]] for x in data])
print(subprocess.run(["/usr/bin/python3", "-c", "import sys; print(sys.version)"], capture_output=True, text=True).stdout)
print(len(glob.glob("/usr/lib/python3*/json/*.py")))
subprocess.run("ls /usr/bin | wc -l", shell=True, check=True)
os.system("uname -a >/dev/null")
shutil.rmtree(d)
EOF
record py-stdlib $PY "$W/stdlib.py"

cat >"$W/client.py" <<EOF
import urllib.request, json, socket, threading, os, tempfile
base = "http://127.0.0.1:$HTTP/"
for name in ["index.html", "data.txt", "payload"]:
    body = urllib.request.urlopen(base + name).read()
    with open(os.path.join(tempfile.gettempdir(), "rd-dl-" + name), "wb") as f:
        f.write(body)
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(4)
port = srv.getsockname()[1]
def serve():
    for _ in range(3):
        c, _ = srv.accept()
        c.sendall(c.recv(100).upper())
        c.close()
threading.Thread(target=serve, daemon=True).start()
for _ in range(3):
    c = socket.create_connection(("127.0.0.1", port))
    c.sendall(b"ping")
    print(c.recv(100))
    c.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.sendto(b"x", ("127.0.0.1", 9))
EOF
record py-net $PY "$W/client.py"

cat >"$W/test_small.py" <<'EOF'
import unittest, os, tempfile, subprocess
class T(unittest.TestCase):
    def test_files(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "x.sh")
            with open(p, "w") as f:
                f.write("#!/bin/sh\necho ok\n")
            os.chmod(p, 0o755)
            self.assertEqual(subprocess.run([p], capture_output=True).stdout, b"ok\n")
    def test_env(self):
        self.assertTrue(os.path.isdir(os.environ["HOME"]))
unittest.main()
EOF
record py-unittest $PY "$W/test_small.py"

mkdir -p "$W/git"
record git sh -c "cd '$W/git' && git init -q src && cd src && for i in 1 2 3; do echo line\$i >>f.txt; git add f.txt; git commit -qm c\$i; done && git log --oneline >/dev/null && git diff HEAD~1 >/dev/null && cd .. && git clone -q src dst && git -C dst status --short"

record curl sh -c "cd '$W' && curl -s http://127.0.0.1:$HTTP/index.html && curl -s -o /tmp/rd-curl-data.txt http://127.0.0.1:$HTTP/data.txt && curl -sI http://127.0.0.1:$HTTP/ >/dev/null && rm -f /tmp/rd-curl-data.txt"

mkdir -p "$W/cproj"
cat >"$W/cproj/main.c" <<'EOF'
#include <stdio.h>
#include "util.h"
int main(void) { printf("%d\n", add(2, 3)); return 0; }
EOF
cat >"$W/cproj/util.c" <<'EOF'
#include "util.h"
int add(int a, int b) { return a + b; }
EOF
echo 'int add(int a, int b);' >"$W/cproj/util.h"
printf 'app: main.o util.o\n\t$(CC) -o $@ $^\n%%.o: %%.c util.h\n\t$(CC) -O2 -c $<\ntest: app\n\t./app\nclean:\n\trm -f app *.o\n' >"$W/cproj/Makefile"
record build-c sh -c "cd '$W/cproj' && make -s clean && make -s && make -s test"

mkdir -p "$W/nginx/logs" "$W/nginx/html"
echo 'served by nginx' >"$W/nginx/html/index.html"
cat >"$W/nginx/nginx.conf" <<EOF
pid $W/nginx/nginx.pid;
error_log $W/nginx/logs/error.log;
events { worker_connections 64; }
http {
    access_log $W/nginx/logs/access.log;
    client_body_temp_path $W/nginx/body;
    proxy_temp_path $W/nginx/proxy;
    fastcgi_temp_path $W/nginx/fastcgi;
    uwsgi_temp_path $W/nginx/uwsgi;
    scgi_temp_path $W/nginx/scgi;
    server { listen 127.0.0.1:18081; root $W/nginx/html; }
}
EOF
record nginx sh -c "nginx -p '$W/nginx' -c '$W/nginx/nginx.conf' && for i in 1 2 3; do curl -s http://127.0.0.1:18081/ >/dev/null; done; nginx -p '$W/nginx' -c '$W/nginx/nginx.conf' -s quit; sleep 0.5"

mkdir -p "$W/redis"
record redis sh -c "cd '$W/redis' && (redis-server --port 16379 --bind 127.0.0.1 --save '' --daemonize no >/dev/null &) && for i in \$(seq 30); do redis-cli -p 16379 ping >/dev/null 2>&1 && break; sleep 0.1; done; redis-cli -p 16379 set k v && redis-cli -p 16379 get k && redis-cli -p 16379 incr n && redis-cli -p 16379 shutdown nosave || true"

mkdir -p "$W/sh"
cat >"$W/sh/work.sh" <<'EOF'
set -e
cd "$(dirname "$0")"
seq 1 2000 | awk '{print $1*3}' | sort -n | uniq | tail -3
find /usr/share/doc -maxdepth 2 -name 'copyright' 2>/dev/null | head -20 | xargs wc -l | tail -1
sed 's/a/b/g' /etc/os-release | grep -c ID
cp /etc/hostname h.txt && mv h.txt h2.txt && ln -sf h2.txt h3.txt && cat h3.txt >/dev/null
printf '#!/bin/sh\necho generated\n' >gen.sh && chmod +x gen.sh && ./gen.sh
mkdir -p tree/a/b && touch tree/a/b/f && rm -r tree
tar -czf /tmp/rd-share.tgz -C /usr/share/doc bash 2>/dev/null || true
gzip -dc /tmp/rd-share.tgz | tar -t | head -3
rm -f /tmp/rd-share.tgz gen.sh h2.txt h3.txt
id; whoami; date -u +%Y >/dev/null; uname -a >/dev/null; env | wc -l; ps -o pid= -p $$ >/dev/null; ps aux >/dev/null
test -r "$HOME/.gitconfig" && git config --get user.name
EOF
record shell bash "$W/sh/work.sh"

mkdir -p "$W/gomod/sub"
cat >"$W/gomod/go.mod" <<'EOF'
module example.com/rd

go 1.21
EOF
cat >"$W/gomod/main.go" <<'EOF'
package main

import (
	"fmt"
	"os"
	"strings"
)

func main() { fmt.Println(strings.ToUpper("built by go"), len(os.Args)) }
EOF
cat >"$W/gomod/sub/sub_test.go" <<'EOF'
package sub

import "testing"

func TestAdd(t *testing.T) {
	if 1+1 != 2 {
		t.Fatal("math")
	}
}
EOF
record go-build sh -c "cd '$W/gomod' && go build -o /tmp/rd-gobin . && /tmp/rd-gobin && rm -f /tmp/rd-gobin"
record go-test sh -c "cd '$W/gomod' && go test -count=1 ./sub"

record keys sh -c "rm -f '$HOME/.ssh/id_rd' && ssh-keygen -q -t ed25519 -N '' -f '$HOME/.ssh/id_rd' && ssh-keygen -l -f '$HOME/.ssh/id_rd.pub' && cat '$HOME/.ssh/id_rd.pub' >/dev/null && chmod 600 '$HOME/.ssh/id_rd' && rm -f '$HOME/.ssh/id_rd' '$HOME/.ssh/id_rd.pub' && openssl rand -hex 8"

record strace sh -c "strace -f -qq -o /dev/null ls / >/dev/null && gdb -q -batch -ex run --args /bin/true >/dev/null 2>&1 || true"

record node node -e "let s=0; for (let i=0;i<3e6;i++) s+=i%7; const fs=require('fs'); fs.writeFileSync('/tmp/rd-node.txt', String(s)); console.log(fs.readFileSync('/tmp/rd-node.txt','utf8')); fs.unlinkSync('/tmp/rd-node.txt')"

cat >"$W/text.pl" <<'EOF'
use strict; my %n;
open(my $f, "<", "/etc/services") or die; while (<$f>) { $n{$1}++ if /^(\w)/ } close $f;
print join(",", map { "$_=$n{$_}" } sort keys %n), "\n";
opendir(my $d, "/usr/bin") or die; my @x = grep { /^py/ } readdir $d; closedir $d; print scalar(@x), "\n";
system("/bin/true"); system("ls /usr | wc -l >/dev/null"); my $id = `id -u`;
EOF
record perl perl "$W/text.pl"

record healthcheck bash -c "for i in 1 2 3; do (exec 3<>/dev/tcp/127.0.0.1/$HTTP && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && head -1 <&3) || true; done; $PY -c 'import socket; socket.create_connection((\"127.0.0.1\", $HTTP)).close()'"

BEN=$ROOT/scripts/riskdata/benign
gcc -O1 -o "$WORK/bin/ctool" "$BEN/ctool.c"
record c-tool "$WORK/bin/ctool"
record py-admin $PY "$BEN/admin.py"
record installer sh "$BEN/installer.sh"
record shims bash "$BEN/shims.sh"

# ---------------------------------------------------------------- hostile
for c in revshell credread procmem dropexec memfdexec wx ptrace unshare modload; do
	gcc -O1 -o "$WORK/bin/$c" "$HOST/$c.c"
done

# revshell VARIANT PORT CMD...: a listener on PORT, then CMD under learning.
revshell() {
	local name=$1 port=$2
	shift 2
	$PY "$HOST/listener.py" "$port" >/dev/null &
	local l=$!
	sleep 0.3
	RD_PORT=$port record "$name" "$@"
	wait "$l" 2>/dev/null || true
}
revshell h-revshell-c 4444 "$WORK/bin/revshell"
revshell h-revshell-py 8443 $PY "$HOST/revshell.py"
revshell h-revshell-bash 9001 bash "$HOST/revshell.sh"
revshell h-revshell-perl 18082 perl "$HOST/revshell.pl"

record h-credread-c "$WORK/bin/credread"
record h-credread-py $PY "$HOST/credread.py"
record h-credread-sh sh "$HOST/credread.sh"
record h-credread-procmem "$WORK/bin/procmem"

record h-dropexec-sh sh "$HOST/dropexec.sh"
record h-dropexec-py $PY "$HOST/dropexec.py"
record h-dropexec-c "$WORK/bin/dropexec"

record h-memfdexec-c "$WORK/bin/memfdexec"
record h-memfdexec-py $PY "$HOST/memfdexec.py"
record h-memfdexec-perl perl "$HOST/memfdexec.pl"

record h-wx-mmap "$WORK/bin/wx"
record h-wx-mprotect "$WORK/bin/wx" mprotect
record h-wx-py $PY "$HOST/wx.py"

record h-ptrace-attach "$WORK/bin/ptrace"
record h-ptrace-seize "$WORK/bin/ptrace" seize
record h-ptrace-py $PY "$HOST/ptrace.py"

record h-unshare-c "$WORK/bin/unshare" /tmp
record h-unshare-sh sh "$HOST/unshare.sh"
record h-unshare-py $PY "$HOST/unshare.py"

record h-modload-c "$WORK/bin/modload"
record h-modload-py $PY "$HOST/modload.py"

# KEEP_EVENTS=DIR keeps the raw event logs (to rerun only the compactor).
if [ -n "${KEEP_EVENTS:-}" ]; then mkdir -p "$KEEP_EVENTS" && cp "$EV"/*.jsonl "$KEEP_EVENTS"/ && echo "$WORK" >"$KEEP_EVENTS/WORK"; fi
# The work directory differs per run: the compactor rewrites it (see
# compact's doc comment) so that paths are stable.
go run ./scripts/riskdata/compact -work "$WORK" -archangel "$ARCHANGEL" -out "$OUT" "$EV"/*.jsonl
