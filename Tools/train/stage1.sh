#!/usr/bin/env bash
# Stage 1 of the bundled teaching model (issue 7): data -> VAE -> latent U-Net -> export -> eval.
# Every step resumes: run the script again after an interruption and it continues where it
# stopped (data shards that exist are kept; training resumes from its checkpoint, and the
# --max-minutes budgets count all sessions of a run). Synthetic data only.
#
#   Tools/train/stage1.sh WORKDIR            # the 2-hour plan's budget (README, "The whole training")
#   COUNT=2000 VAE_STEPS=600 VAE_MIN=6 UNET_STEPS=700 UNET_MIN=8 Tools/train/stage1.sh /tmp/smoke
#   UNET_SIZE=small ...   # the U-Net of --size small (6 levels, 4 heads) on the run's VAE
#   CONDITION_WEIGHT=atrial_flutter=3,pvc=3 ...   # sample those records 3x as often (U-Net; default below)
#   CONDITION_WEIGHT= ...                    # no weighting
#   EVAL_N=0 ...                             # skip the closing evaluation (train_all.sh does)
#
# One thread per process (on a shared 2-core machine two threads were 15-30x slower than one);
# stage 2 can use the other core at the same time.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${1:?usage: stage1.sh WORKDIR}
py=${PYTHON:-/opt/uniecg-venv/bin/python}
seed=${SEED:-1}
mkdir -p "$work"
rm -f "$work/done"   # written when the export is complete: stage 2's language model then takes this core
# Rare findings drawn more often: without it a 13,000-step U-Net drew no flutter and one PVC in 8
# (README, "Diffusion half of 2026-12-07").
weights=${CONDITION_WEIGHT-atrial_flutter=3,pvc=3,sinus_tachycardia=1.5,first_degree_av_block=1.5,low_voltage=1.5,long_qt=1.5}
phase() { [ -z "${TIMELINE:-}" ] || echo "$(date -u +%T) stage1 $*" >> "$TIMELINE"; }

phase data
"$py" "$here/diffusion_data.py" --out "$work/data" --count "${COUNT:-12000}" --seed "$seed" \
    --objectives "${OBJECTIVES:-2}" --shard-size 500 --jobs "${JOBS:-2}"
phase vae
"$py" "$here/train_diffusion.py" vae --data "$work/data" --run "$work/run" --seed "$seed" \
    --steps "${VAE_STEPS:-3000}" --max-minutes "${VAE_MIN:-15}" --batch 16 --threads 1 --save-every 500
phase unet
# 2.4-2.7 steps/s beside stage 2 on the other core (3.0-3.3 alone): 13,000 steps, the schedule that
# drew the rare findings, in about its 85-minute budget (README, "Training speed")
"$py" "$here/train_diffusion.py" unet --data "$work/data" --run "$work/run" --seed "$seed" --size "${UNET_SIZE:-tiny}" \
    ${weights:+--condition-weight "$weights"} --steps "${UNET_STEPS:-13000}" --max-minutes "${UNET_MIN:-85}" --batch 64 --threads 1 --save-every 500
phase export
"$py" "$here/export_diffusion.py" --run "$work/run" --out "$work/export"
touch "$work/done"
phase done
if [ "${EVAL_N:-8}" -gt 0 ]; then
    "$py" "$here/eval_diffusion.py" --model "$work/export" --per-condition "${EVAL_N:-8}" --steps 25 \
        | tee "$work/eval.txt"
fi
