#!/usr/bin/env bash
# Stage 2 of the bundled teaching model (issue 7 point 4): measured evidence + explanations on
# stage 1's records, then the unified language model (tokenizer, decoder, signal encoder,
# projector, generation tokens, aligner), then its converter input. Re-run to resume.
#
#   Tools/train/stage2.sh STAGE1_WORKDIR WORKDIR     # needs a release build of uniecg
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
"$py" "$here/train_unified.py" --data "$work/data" --run "$work/run" --seed "$seed" \
    --steps "${STEPS:-3000}" --max-minutes "${MINUTES:-45}" --threads 1
"$py" "$here/train_unified.py" --data "$work/data" --run "$work/run" --seed "$seed" --export "$work/export"
