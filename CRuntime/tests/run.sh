#!/usr/bin/env bash
# Runs the C core's plain-C tests: a native build, the same under AddressSanitizer +
# UndefinedBehaviorSanitizer, and (when the cross toolchain and qemu are installed, always in
# CI) an arm64 build run under qemu twice: an armv8.0 CPU (NEON only) and one with the
# dot-product extension, so both NEON kernel variants run against the portable one.
#
#   bash CRuntime/tests/run.sh            everything available
#   UNIECG_SKIP_ARM64=1 bash ...          native only
set -euo pipefail
cd "$(dirname "$0")"
jobs=$(nproc 2>/dev/null || echo 2)

echo "== native =="
make -s -j"$jobs" all
make -s test

echo "== native, ASan + UBSan =="
make -s -j"$jobs" all SANITIZE=1
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 make -s test SANITIZE=1

if [[ "${UNIECG_SKIP_ARM64:-0}" == 1 ]]; then
    echo "== arm64: skipped (UNIECG_SKIP_ARM64=1) =="
    exit 0
fi
if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64 >/dev/null \
    || [[ ! -e /usr/lib/aarch64-linux-gnu/libzstd.a ]]; then
    if [[ "${CI:-}" == true ]]; then
        echo "arm64 toolchain missing in CI (Tools/install-deps.sh --arm64 installs it)" >&2
        exit 1
    fi
    echo "== arm64: skipped (install with: bash Tools/install-deps.sh --arm64) =="
    exit 0
fi

# Static: Debian 12's qemu-user hangs in pthread_create for dynamically linked arm64 programs
# on some hosts (seen in our CI sandbox); static ones run.
cross=(CC=aarch64-linux-gnu-gcc ZSTD_CFLAGS= "ZSTD_LIBS=-L/usr/lib/aarch64-linux-gnu -lzstd" LDFLAGS=-static)
make -s -j"$jobs" all "${cross[@]}"
# cortex-a53 is armv8.0 (Raspberry Pi 3); cortex-a76 has SDOT (Raspberry Pi 5).
# test_kernels checks the CPU reports exactly the expected variants.
for cpu in cortex-a53:portable,neon cortex-a76:portable,neon,neon-dotprod; do
    echo "== arm64 under qemu, -cpu ${cpu%%:*} =="
    UNIECG_EXPECT_KERNELS=${cpu#*:} make -s test "${cross[@]}" RUN="qemu-aarch64 -cpu ${cpu%%:*}"
done
