#!/usr/bin/env bash
# Stage 2 of the bundled teaching model (issue 7 point 4): measured evidence + explanations on
# stage 1's records, then the unified language model (tokenizer, decoder, signal encoder,
# projector, generation tokens, aligner, and the photo path: image data, image tower pretrained
# on its own, then with its projector inside the language model),
# then its converter input. Re-run to resume.
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

"$py" "$here/stage2_data.py" --stage1 "$stage1/data" --out "$work/data" --uniecg "$uniecg" \
    --count "${COUNT:-6000}" --seed "$seed"
photos=${PHOTOS:-2500}
images=()
if [ "$photos" -gt 0 ]; then
    # ~0.4 s per record and photo variant on one core (rsvg-convert and the distortions)
    "$py" "$here/image_data.py" --data "$work/data" --out "$work/images" --uniecg "$uniecg" \
        --count "$photos" --variants "${PHOTO_VARIANTS:-1}" --seed "$seed"
    # The image tower learns to read the condition alone first (max-pooled condition head):
    # through the language model alone it never starts (README, "the photo path").
    if [ ! -f "$work/image_tower.pt" ]; then
        "$py" "$here/probe_image_tower.py" --data "$work/data" --images "$work/images" --pool max --shift 6 \
            --held-out 200 --steps "${TOWER_STEPS:-2500}" --minutes "${TOWER_MINUTES:-60}" \
            --threads "${TOWER_THREADS:-1}" --seed "$seed" --save "$work/image_tower.pt"
    fi
    images=(--images "$work/images" --image-tower "$work/image_tower.pt")
fi
"$py" "$here/train_unified.py" --data "$work/data" --run "$work/run" --seed "$seed" \
    --steps "${STEPS:-3000}" --max-minutes "${MINUTES:-45}" --threads 1 "${images[@]}"
"$py" "$here/train_unified.py" --data "$work/data" --run "$work/run" --seed "$seed" --export "$work/export"
