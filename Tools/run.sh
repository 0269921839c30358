#!/usr/bin/env bash
# The quick start's main job. Until the bundled default model exists (issue: uniecg-tiny),
# it builds UniECG and runs both halves on the bundled tiny fixture models, whose weights are
# random or barely trained: the pipeline is real, the text and the ECG are not meaningful.
#   1. converts the fixture language model, verifies it, and streams a short completion;
#   2. converts the fixture DiffuSETS-shaped U-Net + VAE and generates a 12-lead record
#      (WFDB, CSV and an SVG on ECG paper) from a condition file.
set -euo pipefail
cd "$(dirname "$0")/.."
bash Tools/install-deps.sh
swift build -c release --product uniecg
swift build -c release --product uniecg-convert
bin=$(swift build -c release --show-bin-path)
out=.build/quickstart
mkdir -p "$out"

echo "== language model =="
"$bin/uniecg-convert" Tests/Fixtures/decoder/qwen2-bias-tied-hd80 -o "$out/tiny-qwen2.uecg"
"$bin/uniecg" inspect "$out/tiny-qwen2.uecg" --verify
"$bin/uniecg" complete --model "$out/tiny-qwen2.uecg" --temperature 0 --max-tokens 24 "Sinus rhythm"

echo "== ECG generation =="
"$bin/uniecg-convert" Tests/Fixtures/diffusets/small -o "$out/tiny-diffusion.uecg"
# The fixture's condition width is 32: a made-up embedding, a 63-year-old man at 72 bpm.
embedding=$(seq 1 32 | awk '{ printf "%s%.3f", (NR > 1 ? ", " : ""), sin($1) / 5 }')
printf '{"embedding": [%s], "sex": "male", "age": 63, "heart_rate": 72}\n' "$embedding" > "$out/condition.json"
"$bin/uniecg" generate --model "$out/tiny-diffusion.uecg" --condition "$out/condition.json" --steps 25 --seed 7 \
    -o "$out/generated"
echo "quick start done: files in $out"
