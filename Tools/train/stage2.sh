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
photos=${PHOTOS:-1200}
images=()
if [ "$photos" -gt 0 ]; then
    # ~0.6 s per record on one core (plot, rsvg-convert at 1280 px, one photo-like copy)
    phase images
    "$py" "$here/image_data.py" --data "$work/data" --out "$work/images" --uniecg "$uniecg" \
        --count "$photos" --variants "${PHOTO_VARIANTS:-1}" --seed "$seed"
    # The image tower learns to read the condition alone first (max-pooled condition head):
    # through the language model alone it never starts (README, "the photo path"). With the heart
    # rate as a second target its held-out accuracy left chance ~500 steps sooner (28.7 % at step
    # 1,000 against 7.0 %; README, "Training speed").
    if [ ! -f "$work/image_tower.pt" ]; then
        phase tower
        "$py" "$here/probe_image_tower.py" --data "$work/data" --images "$work/images" --pool max \
            --shift "${TOWER_SHIFT:-0}" --held-out 200 ${TOWER_STEPS:+--steps "$TOWER_STEPS"} \
            --minutes "${TOWER_MINUTES:-25}" --threads "${TOWER_THREADS:-1}" --seed "$seed" \
            --rate-weight "${TOWER_RATE_WEIGHT:-1}" --eval-every 250 --save "$work/image_tower.pt"
    fi
    # the pretrained tower stays fixed (trained on at lr 2e-3 it forgot what it had learned);
    # two photo sequences per step keep the step near the explain-only cost
    images=(--images "$work/images" --image-tower "$work/image_tower.pt" --freeze-tower
            --photo-batch "${PHOTO_BATCH:-2}")
fi
phase language-model
# ~22-24 steps a minute on one core beside stage 1's U-Net, ~1.7 times that with both cores once
# stage 1 is done: ~1,650-1,800 steps; the learning rate's cosine ends with the minutes if they run out first
"$py" "$here/train_unified.py" --data "$work/data" --run "$work/run" --seed "$seed" \
    --steps "${STEPS:-1800}" --max-minutes "${MINUTES:-67}" --threads 1 --add-thread-when "$stage1/done" "${images[@]}"
phase export
"$py" "$here/train_unified.py" --data "$work/data" --run "$work/run" --seed "$seed" --export "$work/export"
phase done
