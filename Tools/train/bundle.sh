#!/usr/bin/env bash
# Puts stage 1 (U-Net + VAE) and stage 2 (language model, tokenizer, signal encoder, aligner,
# prompt) exports into one converter directory and writes the bundled model
# Models/uniecg-tiny.uecg (q8). Synthetic data only; the description says so.
#
#   Tools/train/bundle.sh STAGE1_WORKDIR STAGE2_WORKDIR [OUTPUT]
#
# The sampling defaults written into the file (SAMPLER, SAMPLE_STEPS, GUIDANCE; default ancestral DDPM,
# 250 steps, guidance 3) were chosen with eval_unified.py on held-out records after training
# (Tools/train/README.md, "Sampling defaults"); export_diffusion.py's own are DDIM 25 / 2.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
stage1=${1:?usage: bundle.sh STAGE1_WORKDIR STAGE2_WORKDIR [OUTPUT]}
stage2=${2:?usage: bundle.sh STAGE1_WORKDIR STAGE2_WORKDIR [OUTPUT]}
out=${3:-$root/Models/uniecg-tiny.uecg}
dir="$stage2/bundle"
rm -rf "$dir"
mkdir -p "$dir"
cp "$stage2"/export/* "$dir"/
cp "$stage1/export/unet.safetensors" "$stage1/export/vae.safetensors" "$dir"/
# The language model's Hugging Face config.json keeps its name; the diffusion config moves aside.
cp "$stage1/export/config.json" "$dir/diffusion_config.json"
(cd "$root" && swift build -c release --product uniecg-convert >/dev/null)
convert=$(cd "$root" && swift build -c release --show-bin-path)/uniecg-convert
"$convert" "$dir" -o "$stage2/converted.uecg" --quant q8 --name uniecg-tiny --description \
    "uniecg-tiny: a small teaching demonstration of the UniECG design, trained only on synthetic ECGs from the project's simulator (Tools/train/ecgsim) with synthetic text. It has never seen a real patient's ECG. Educational aid only; not a diagnostic device."
"$convert" "$stage2/converted.uecg" -o "$out" --set unet.schedule.sampler="${SAMPLER:-ddpm}" \
    --set unet.schedule.steps="${SAMPLE_STEPS:-250}" --set unet.guidance_scale="${GUIDANCE:-3}"
