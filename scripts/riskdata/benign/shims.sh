#!/bin/bash
# Benign workload: developer toolchains installed under hidden directories
# of the home directory, reached through PATH shims — pyenv's
# ~/.pyenv/shims, ~/.local/bin (pip --user, pipx), ~/.cargo/bin (rustup),
# ~/.nvm-style version directories. CI runners and workstations are full
# of these: a shell script in one hidden directory that execs a real
# interpreter in another, found by a PATH search that misses in several
# directories first.
set -u
H=$HOME
mkdir -p "$H/.pyenv/shims" "$H/.pyenv/versions/3.x/bin" "$H/.local/bin" "$H/.cargo/bin" "$H/.nvm/versions/node/v20/bin"
ln -sf "$(command -v python3)" "$H/.pyenv/versions/3.x/bin/python3"
cat >"$H/.pyenv/shims/python3" <<SHIM
#!/usr/bin/env bash
set -e
exec "$H/.pyenv/versions/3.x/bin/python3" "\$@"
SHIM
cat >"$H/.local/bin/mytool" <<'TOOL'
#!/bin/sh
exec python3 -c 'import json, sys; print(json.dumps({"args": sys.argv[1:]}))' "$@"
TOOL
cp "$(command -v true)" "$H/.cargo/bin/cargo-fmt"
ln -sf "$(command -v node 2>/dev/null || command -v true)" "$H/.nvm/versions/node/v20/bin/node"
chmod +x "$H/.pyenv/shims/python3" "$H/.local/bin/mytool"
export PATH="$H/.cargo/bin:$H/.local/bin:$H/.pyenv/shims:$H/.nvm/versions/node/v20/bin:$PATH"
for i in 1 2 3; do
	python3 -c 'import os; print(os.getpid() > 0)' >/dev/null
	mytool a b >/dev/null
	cargo-fmt --check
	node -e '1' >/dev/null 2>&1 || true
done
bash -c 'python3 --version' >/dev/null
