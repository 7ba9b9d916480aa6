# A benign "curl | sh"-style installer for the risk data: download a script
# and a program from the loopback web server into a temp directory, make
# them executable and run them, as install scripts do.
set -e
d=$(mktemp -d)
curl -fsS -o "$d/install.sh" "http://127.0.0.1:$RD_HTTP/install.sh"
curl -fsS -o "$d/tool" "http://127.0.0.1:$RD_HTTP/payload"
chmod +x "$d/install.sh" "$d/tool"
"$d/install.sh" "$d"
"$d/tool"
rm -rf "$d"
