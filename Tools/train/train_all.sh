#!/usr/bin/env bash
# The whole training of the bundled teaching model in one command (issue 7 point 5: at most two
# hours on a 2-core machine): stage 1 (diffusion) on one core and stage 2 (language model and
# photo path) on the other, then both exports bundled into one .uecg. Synthetic data only.
#
#   Tools/train/train_all.sh WORKDIR [OUTPUT]      # OUTPUT defaults to WORKDIR/uniecg-tiny.uecg
#
# Stage 1 makes its data on both cores first; stage 2 starts when that data is complete (it
# re-simulates the same records). Every step resumes: run the command again after an
# interruption. WORKDIR/timeline.txt gets the wall-clock time of every phase, the logs are
# appended to WORKDIR/stage1.log and WORKDIR/stage2.log. Budgets: stage1.sh and stage2.sh (their
# environment variables pass through).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${1:?usage: train_all.sh WORKDIR [OUTPUT]}
mkdir -p "$work"
work=$(cd "$work" && pwd)
out=${2:-$work/uniecg-tiny.uecg}
export TIMELINE="$work/timeline.txt"
echo "$(date -u +%T) start" >> "$TIMELINE"

(cd "$here/../.." && swift build -c release --product uniecg >/dev/null)   # stage 2 measures with it

EVAL_N=0 "$here/stage1.sh" "$work/stage1" >> "$work/stage1.log" 2>&1 &
stage1=$!
until [ -f "$work/stage1/data/manifest.json" ]; do
    if ! kill -0 "$stage1" 2>/dev/null; then
        wait "$stage1" || true
        echo "stage 1 stopped before its data was complete: $work/stage1.log" >&2
        exit 1
    fi
    sleep 5
done
if ! "$here/stage2.sh" "$work/stage1" "$work/stage2" >> "$work/stage2.log" 2>&1; then
    echo "stage 2 failed: $work/stage2.log (stage 1 goes on: $work/stage1.log)" >&2
    wait "$stage1" || true
    exit 1
fi
if ! wait "$stage1"; then
    echo "stage 1 failed: $work/stage1.log" >&2
    exit 1
fi
"$here/bundle.sh" "$work/stage1" "$work/stage2" "$out"
echo "$(date -u +%T) bundled $out" >> "$TIMELINE"
cat "$TIMELINE"
