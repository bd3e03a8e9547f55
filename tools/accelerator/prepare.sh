#!/usr/bin/env bash
# On the workstation: pack what a GPU machine needs into .accel/ (git-ignored, < 64 MiB):
# FER-2013 train+val as JPEG bytes, the teacher's soft labels, and the Keras wheels that
# machine lacks (it has JAX, NumPy, OpenCV and scikit-learn, but no Keras).
#   bash tools/accelerator/prepare.sh [SHARED_DATA]   (default ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/../.."
shared=${1:-${EMOPI_SHARED_DATA:-../shared/data}}
mkdir -p .accel/whl
python3 "$shared/../tools/pack_fer_npz.py" .accel/fer.npz --root "$shared/fer2013"
install -m 644 "$shared/fer2013/teacher/resnet18_train_logprobs.npz" .accel/teacher-logprobs.npz
# The GPU machine runs Python 3.12 on x86-64; keep these pins equal to what CI trains with.
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .accel/whl \
  "keras==$(python3 -c 'import keras; print(keras.__version__)' 2>/dev/null || echo 3.15.1)" \
  namex optree
du -sh .accel
