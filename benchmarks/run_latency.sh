#!/usr/bin/env bash
# Reproduce the issue-16 figures (detection off the frame loop, classification on demand,
# cheaper Haar scans, threads, the ratio to the `fer` package) on this machine, one
# measurement at a time:
#
#   bash benchmarks/run_latency.sh [--only STEP,...] [VIDEO]
#
# Steps (default: all, in this order):
#   haar          haar_sweep.py              -> results/haar-sweep/
#   classify      classify_every.py          -> results/classify-every/
#   before-after  before_after.py            -> results/before-after/  (flat out and paced at 30 fps)
#   fer           compare_fer.py             -> results/compare-fer/   (issue 16's table: fer,
#                 emopi before, after and after at 2 threads, side by side in one run)
#   threads       emopi bench --sweep threads=1,2 -> results/sweep-threads-portrait/
#
# VIDEO defaults to ../shared/data/video/liveportrait_d3.mp4 (512x512, one face); a 640x360
# "stage" clip with four smaller faces is made from it in a temporary folder. The fer step
# needs the fer venv (benchmarks/README.md; $FER_PYTHON, else ../fer-venv/bin/python): without
# it, it says so in one line and the other steps run. All steps should take about 13 minutes
# on an idle 2-core machine, the fer step about 3 of them (10 on a heavily loaded one).
set -euo pipefail
cd "$(dirname "$0")/.."
steps=haar,classify,before-after,fer,threads
if [ "${1:-}" = --only ]; then
  steps=${2:?--only needs steps, e.g. --only fer}
  shift 2
fi
video=${1:-../shared/data/video/liveportrait_d3.mp4}
fer_python=${FER_PYTHON:-../fer-venv/bin/python}
out=benchmarks/results
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
[ -f "$video" ] || { echo "run_latency: $video not found" >&2; exit 1; }
for step in ${steps//,/ }; do
  case $step in haar | classify | before-after | fer | threads) ;;
    *) echo "run_latency: unknown step $step" >&2; exit 2 ;;
  esac
done
want() { [[ ",$steps," == *",$1,"* ]]; }
export EMOPI_CONFIG=/dev/null # the built-in defaults, whatever /etc/emopi holds

python benchmarks/stage_video.py "$video" "$tmp/stage.mp4"
if want haar; then
  python benchmarks/haar_sweep.py "$video" "$tmp/stage.mp4" --frames 40 --fer-faces 20 \
    --out "$out/haar-sweep" >/dev/null
  echo "== $out/haar-sweep"
fi
if want classify; then
  python benchmarks/classify_every.py "$video" "$tmp/stage.mp4" --out "$out/classify-every" \
    >/dev/null
  echo "== $out/classify-every"
fi
if want before-after; then
  python benchmarks/before_after.py "$video" "$tmp/stage.mp4" --rounds 4 --paced-rounds 2 \
    --out "$out/before-after" >/dev/null
  echo "== $out/before-after"
fi
if want fer; then
  if [ -x "$fer_python" ]; then
    python benchmarks/compare_fer.py "$video" "$tmp/stage.mp4" --rounds 2 --chunks 4 \
      --fer-python "$fer_python" --out "$out/compare-fer" >/dev/null
    echo "== $out/compare-fer"
  else
    echo "run_latency: no fer venv at $fer_python (see benchmarks/README.md), the fer table is skipped" >&2
  fi
fi
if want threads; then
  emopi bench --source "$video" --sweep threads=1,2 --broker none \
    --out "$out/sweep-threads-portrait" >/dev/null
  rm -f "$out/sweep-threads-portrait/bench.png"
  sed -i 's/^!\[latency\](bench.png)$//' "$out/sweep-threads-portrait/bench.md"
  echo "== $out/sweep-threads-portrait"
fi
