#!/usr/bin/env bash
# The quick start's main job: builds UniECG and runs both halves of the bundled teaching model
# Models/uniecg-tiny.uecg (trained only on synthetic data; an educational aid, not a diagnostic
# device):
#   1. verifies the model file (every tensor's checksum);
#   2. explains a bundled example record (Models/examples) and prints the measurements it cites;
#   3. generates a 12-lead ECG from a learning objective and writes it as WFDB (.hea/.dat), CSV
#      and an SVG on ECG paper under .build/quickstart/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash Tools/install-deps.sh
swift build -c release --product uniecg
bin=$(swift build -c release --show-bin-path)
model=Models/uniecg-tiny.uecg
out=.build/quickstart
mkdir -p "$out"

echo "== the model =="
"$bin/uniecg" inspect "$model" --verify | tail -n 3

echo
echo "== explain: Models/examples/atrial_fibrillation.hea =="
"$bin/uniecg" explain --model "$model" Models/examples/atrial_fibrillation.hea

echo
echo "== generate =="
"$bin/uniecg" generate --model "$model" --seed 7 -o "$out/generated" \
    "Show me sinus bradycardia at 48 bpm in a 70-year-old man"
echo "quick start done: files in $out"
