# credread (shell): cat the secrets, pack ~/.ssh into base64.
test -e /archangel-riskdata/begin/credread
cat "$HOME/.ssh/id_rsa" "$HOME/.aws/credentials" /etc/shadow >/dev/null
tar -C "$HOME" -cz .ssh | base64 >/dev/null
grep -h key "$HOME"/.aws/* >/dev/null
test -e /archangel-riskdata/end
