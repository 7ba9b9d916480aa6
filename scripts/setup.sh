#!/usr/bin/env bash
# Installs what archangel needs to build and test on Debian/Ubuntu: gcc
# (cgo: the launcher shim), the ordinary programs the integration tests run
# under real filters, and libseccomp-dev for ../shared/bench/limits, the C
# harness the benchmarks are compared with. nginx and redis are run (on
# loopback, by the tests themselves) under their shipped profiles.
set -euo pipefail
need=()
dpkg -s libseccomp-dev >/dev/null 2>&1 || need+=(libseccomp-dev)
for tool in gcc:gcc make:make python3:python3 curl:curl git:git nginx:nginx redis-server:redis-server redis-cli:redis-tools; do
	command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool#*:}")
done
if ((${#need[@]})); then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	echo "setup: installing ${need[*]}" >&2
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v go >/dev/null 2>&1 || { echo "setup: Go 1.26+ is required (https://go.dev/dl)" >&2; exit 1; }
