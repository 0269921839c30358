#!/usr/bin/env bash
# Stage 2 of the bundled teaching model (issue 7 point 4): measured evidence + explanations on
# stage 1's records, then the unified language model (tokenizer, decoder, signal encoder,
# projector, generation tokens, aligner, and the photo path: image data, image tower pretrained
# on its own, then with its projector inside the language model), then its converter input.
# Re-run to resume. The defaults are the 2-hour plan's (README, "The whole training"): one core,
# beside stage 1 on the other.
#
#   Tools/train/stage2.sh STAGE1_WORKDIR WORKDIR     # needs a release build of uniecg and rsvg-convert
#   PHOTOS=0 Tools/train/stage2.sh ...               # without the photo path
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
stage1=${1:?usage: stage2.sh STAGE1_WORKDIR WORKDIR}
work=${2:?usage: stage2.sh STAGE1_WORKDIR WORKDIR}
py=${PYTHON:-/opt/uniecg-venv/bin/python}
uniecg=${UNIECG:-$here/../../.build/release/uniecg}
seed=${SEED:-1}
mkdir -p "$work"
phase() { [ -z "${TIMELINE:-}" ] || echo "$(date -u +%T) stage2 $*" >> "$TIMELINE"; }

phase data
"$py" "$here/stage2_data.py" --stage1 "$stage1/data" --out "$work/data" --uniecg "$uniecg" \
    --count "${COUNT:-6000}" --seed "$seed"
photos=${PHOTOS:-2000}
images=()
if [ "$photos" -gt 0 ]; then
    # ~0.6 s per record on one core (plot, rsvg-convert at 1280 px, one photo-like copy)
    phase images
    "$py" "$here/image_data.py" --data "$work/data" --out "$work/images" --uniecg "$uniecg" \
        --count "$photos" --variants "${PHOTO_VARIANTS:-1}" --seed "$seed"
    # The image tower learns to read the condition alone first (max-pooled condition head):
    # through the language model alone it never starts (README, "the photo path"). Unshifted
    # pictures: held-out accuracy took off after 1,000-1,300 steps, with --shift 6 after ~1,700.
    if [ ! -f "$work/image_tower.pt" ]; then
        phase tower
        "$py" "$here/probe_image_tower.py" --data "$work/data" --images "$work/images" --pool max \
            --shift "${TOWER_SHIFT:-0}" --held-out 200 ${TOWER_STEPS:+--steps "$TOWER_STEPS"} \
            --minutes "${TOWER_MINUTES:-40}" --threads "${TOWER_THREADS:-1}" --seed "$seed" \
            --eval-every 250 --save "$work/image_tower.pt"
    fi
    images=(--images "$work/images" --image-tower "$work/image_tower.pt")
fi
phase language-model
# ~17 steps a minute with the photo path on one core beside stage 1's U-Net: 750 steps let the
# learning rate finish its cosine inside the budget (1,200 could not, README "The whole training")
"$py" "$here/train_unified.py" --data "$work/data" --run "$work/run" --seed "$seed" \
    --steps "${STEPS:-750}" --max-minutes "${MINUTES:-45}" --threads 1 --tower-batch "${TOWER_BATCH:-8}" "${images[@]}"
phase export
"$py" "$here/train_unified.py" --data "$work/data" --run "$work/run" --seed "$seed" --export "$work/export"
phase done
