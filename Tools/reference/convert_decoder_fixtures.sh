#!/usr/bin/env bash
# Converts the decoder fixtures (Hugging Face model dirs written by make_decoder_fixtures.py)
# into the .uecg files the plain-C decoder test reads (CRuntime/tests/test_decoder.c), so that
# test needs neither Swift nor Python at run time:
#   Tests/Fixtures/decoder/<name>/model-none.uecg   weights kept as stored (f16)
#   Tests/Fixtures/decoder/<name>/model-q8.uecg     weights quantized to q8
# The converter is deterministic (no timestamps), so reruns give identical files.
# After a reconversion, rerecord the completions on x86-64:
#   cd CRuntime/tests && make all && ./build/cc/test_decoder --record
#
#   bash Tools/reference/convert_decoder_fixtures.sh [SCRATCH_PATH]   (default .build)
set -euo pipefail
cd "$(dirname "$0")/../.."
scratch=${1:-.build}
# Converted fixtures (name:quantizations), chosen to keep the committed binaries near 3 MB
# (random weights do not compress): both quantizations of the Llama GQA and Qwen2 bias/tied
# shapes (2.48 MB), and only q8 of qwen2-gqa-untied-hd32 (0.45 MB; its unquantized file would
# add 0.84 MB). The Swift tests still cover every shape in both quantizations from the HF dirs.
fixtures=(llama-gqa-untied-hd64:none,q8 qwen2-bias-tied-hd80:none,q8 qwen2-gqa-untied-hd32:q8)

swift build -c release --scratch-path "$scratch" --product uniecg-convert
convert="$scratch/release/uniecg-convert"
for entry in "${fixtures[@]}"; do
    name=${entry%%:*}
    dir=Tests/Fixtures/decoder/$name
    IFS=, read -r -a quants <<<"${entry#*:}"
    for quant in "${quants[@]}"; do
        "$convert" "$dir" -o "$dir/model-$quant.uecg" --quant "$quant" >/dev/null
        printf '%-60s %9d bytes\n' "$dir/model-$quant.uecg" "$(stat -c %s "$dir/model-$quant.uecg")"
    done
done
