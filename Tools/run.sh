#!/usr/bin/env bash
# The quick start's main job. Until the bundled default model exists (issue: uniecg-tiny),
# it builds UniECG, converts the bundled tiny fixture language model to a .uecg file and
# inspects and verifies it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash Tools/install-deps.sh
swift build -c release --product uniecg
swift build -c release --product uniecg-convert
bin=$(swift build -c release --show-bin-path)
out=.build/quickstart
mkdir -p "$out"
"$bin/uniecg-convert" Tests/Fixtures/decoder/qwen2-bias-tied-hd80 -o "$out/tiny-qwen2.uecg"
"$bin/uniecg" inspect "$out/tiny-qwen2.uecg" --verify
