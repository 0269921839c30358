#!/usr/bin/env bash
# Converts the DiffuSETS fixtures (Tests/Fixtures/diffusets/small, written by
# make_diffusets_fixtures.py) into the .uecg files the plain-C tests read, so those tests need
# neither Swift nor Python at run time. The converter is deterministic (no timestamps), so
# reruns give identical files.
#
#   bash Tools/reference/convert_diffusets_fixtures.sh [SCRATCH_PATH]   (default .build)
#   CONFIGURATION=release bash ...                                      (default debug)
set -euo pipefail
cd "$(dirname "$0")/../.."
scratch=${1:-.build}
configuration=${CONFIGURATION:-debug}
small=Tests/Fixtures/diffusets/small

swift build -c "$configuration" --scratch-path "$scratch" --product uniecg-convert
convert="$scratch/$configuration/uniecg-convert"

# Each component from a directory of its own: small/ holds every component's weights, and the
# converter would put all of them into one file. Symbolic links keep the sources single.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# ---- VAE (CRuntime/tests/test_vae.c): vae-none.uecg (f32 as stored), vae-q8.uecg ----
mkdir "$work/vae"
ln -s "$PWD/$small/config.json" "$work/vae/config.json"
ln -s "$PWD/$small/vae.safetensors" "$work/vae/vae.safetensors"
for quant in none q8; do
    "$convert" "$work/vae" -o "$small/vae-$quant.uecg" --quant "$quant" --name diffusets-small-vae >/dev/null
    printf '%-60s %9d bytes\n' "$small/vae-$quant.uecg" "$(stat -c %s "$small/vae-$quant.uecg")"
done

# ---- Latent U-Net (CRuntime/tests/test_unet.c): unet-none.uecg (f32 as stored), unet-q8.uecg,
# for small/ (4 levels, kernel 7) and tiny-k5/ (the published block form, kernel 5) ----
for config in small tiny-k5; do
    dir=Tests/Fixtures/diffusets/$config
    mkdir "$work/unet-$config"
    ln -s "$PWD/$dir/config.json" "$work/unet-$config/config.json"
    ln -s "$PWD/$dir/unet.safetensors" "$work/unet-$config/unet.safetensors"
    for quant in none q8; do
        "$convert" "$work/unet-$config" -o "$dir/unet-$quant.uecg" --quant "$quant" --name "diffusets-$config-unet" >/dev/null
        printf '%-60s %9d bytes\n' "$dir/unet-$quant.uecg" "$(stat -c %s "$dir/unet-$quant.uecg")"
    done
done
