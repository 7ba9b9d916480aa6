# unshare (shell): util-linux unshare into user+mount namespaces and mount a
# tmpfs over /mnt there.
test -e /archangel-riskdata/begin/unshare
unshare -Urm sh -c 'mount -t tmpfs rd /mnt && ls /mnt'
test -e /archangel-riskdata/end
