#!/usr/bin/env bash
# Runs every test: the C core's own tests (plain and under AddressSanitizer +
# UndefinedBehaviorSanitizer), then the Swift test suites. Needs no network beyond apt.
set -euo pipefail
cd "$(dirname "$0")/.."
bash Tools/install-deps.sh
echo "== C core tests (CRuntime/tests) =="
bash CRuntime/tests/run.sh
echo "== Swift tests =="
swift build --build-tests
swift test --skip-build
