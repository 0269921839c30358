#!/usr/bin/env bash
# Runs every test: the C core's own tests (native, under AddressSanitizer +
# UndefinedBehaviorSanitizer, and cross-built for arm64 under qemu), then the Swift test
# suites. Needs no network beyond apt.
set -euo pipefail
cd "$(dirname "$0")/.."
bash Tools/install-deps.sh --arm64
echo "== C core tests (CRuntime/tests) =="
bash CRuntime/tests/run.sh
echo "== Swift tests =="
swift build --build-tests
swift test --skip-build
