#!/usr/bin/env bash
# On the GPU machine (JAX backend): the full depth study, depths 3-6 in both settings, and
# its tables in OUT. The int8 latency column needs TensorFlow: rerun the same
# `emopi study depth` on the workstation over the returned run folders to fill it in.
#   bash tools/accelerator/study.sh OUT [EPOCHS]   (after tools/accelerator/prepare.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$1 epochs=${2:-60}
. tools/accelerator/env.sh
mkdir -p "$out"
python3 -m emopi.edge.cli study depth --data "${ACCEL_DATA:-.accel/fer.npz}" \
  --epochs "$epochs" --depths "${STUDY_DEPTHS:-3,4,5,6}" --out "$out/study" >"$out/study.log" 2>&1 || { tail -30 "$out/study.log"; exit 1; }
tail -5 "$out/study.log"
# What comes back: the tables, the plot, and each run's small files (no checkpoints).
tar -czf "$out/study-runs.tgz" --exclude='*.keras' --exclude='backup' --exclude='*.tflite' \
  -C "$out" study
