#!/usr/bin/env bash
# Installs the system packages UniECG builds against (libzstd-dev, pkg-config) with apt when
# they are missing; uses sudo when not root. Safe to run repeatedly.
set -euo pipefail
missing=()
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
if ! { command -v pkg-config >/dev/null 2>&1 && pkg-config --exists libzstd; }; then
    missing+=(libzstd-dev)
fi
# The C tests' sanitizer build links libasan/libubsan, which Debian's gcc brings along.
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
command -v make >/dev/null 2>&1 || missing+=(make)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing with apt: ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
