#!/usr/bin/env bash
# Installs the system packages UniECG builds against (libzstd-dev, pkg-config, gcc, make) with
# apt when they are missing; uses sudo when not root. Safe to run repeatedly.
#   --arm64   also the arm64 cross toolchain, arm64 libzstd (Debian multiarch) and qemu-user,
#             which the C tests use to run the NEON kernels under emulation.
set -euo pipefail
arm64=0
[[ "${1:-}" == --arm64 ]] && arm64=1
missing=()
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
if ! { command -v pkg-config >/dev/null 2>&1 && pkg-config --exists libzstd; }; then
    missing+=(libzstd-dev)
fi
# The C tests' sanitizer build links libasan/libubsan, which Debian's gcc brings along.
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
command -v make >/dev/null 2>&1 || missing+=(make)
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if [[ $arm64 == 1 ]]; then
    command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || missing+=(gcc-aarch64-linux-gnu)
    command -v qemu-aarch64 >/dev/null 2>&1 || missing+=(qemu-user)
    if [[ ! -e /usr/lib/aarch64-linux-gnu/libzstd.a ]]; then
        dpkg --print-foreign-architectures | grep -qx arm64 || $sudo dpkg --add-architecture arm64
        missing+=(libzstd-dev:arm64)
    fi
fi
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing with apt: ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
