# shellcheck shell=bash
# Sourced by the accelerator scripts: the JAX backend, and emopi + Keras importable on a
# machine where neither is installed (Keras from the carried wheels, emopi from this
# checkout through its package map).
export KERAS_BACKEND=${KERAS_BACKEND:-jax} PYTHONUNBUFFERED=1
# Several trainings may share the GPU: allocate on demand instead of 75 % of it each.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
if ! python3 -c 'import emopi.train' 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .accel/whl/*.whl
  mkdir -p /tmp/pkg/emopi
  ln -sfn "$PWD/edge" /tmp/pkg/emopi/edge
  ln -sfn "$PWD/train" /tmp/pkg/emopi/train
  export PYTHONPATH="/tmp/site:/tmp/pkg${PYTHONPATH:+:$PYTHONPATH}"
fi
python3 -m emopi.train.backend
