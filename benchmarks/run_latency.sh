#!/usr/bin/env bash
# Reproduce the issue-16 figures (detection off the frame loop, classification on demand,
# cheaper Haar scans, threads) on this machine, one measurement at a time:
#
#   bash benchmarks/run_latency.sh [VIDEO]
#
# VIDEO defaults to ../shared/data/video/liveportrait_d3.mp4 (512x512, one face); a 640x360
# "stage" clip with four smaller faces is made from it in a temporary folder. Results go to
# benchmarks/results/{haar-sweep,classify-every,before-after,sweep-threads-portrait}/. Takes about
# 10 minutes on an idle 2-core machine. The ratio to the `fer` package needs a fer venv:
# benchmarks/compare_fer.py (see benchmarks/README.md) measures it side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
video=${1:-../shared/data/video/liveportrait_d3.mp4}
out=benchmarks/results
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
[ -f "$video" ] || { echo "run_latency: $video not found" >&2; exit 1; }
export EMOPI_CONFIG=/dev/null # the built-in defaults, whatever /etc/emopi holds

python benchmarks/stage_video.py "$video" "$tmp/stage.mp4"
python benchmarks/haar_sweep.py "$video" "$tmp/stage.mp4" --frames 40 --fer-faces 20 \
  --out "$out/haar-sweep" >/dev/null
echo "== $out/haar-sweep"
python benchmarks/classify_every.py "$video" "$tmp/stage.mp4" --out "$out/classify-every" \
  >/dev/null
echo "== $out/classify-every"
python benchmarks/before_after.py "$video" "$tmp/stage.mp4" --rounds 4 --paced-rounds 2 \
  --out "$out/before-after" >/dev/null
echo "== $out/before-after"
emopi bench --source "$video" --sweep threads=1,2 --broker none \
  --out "$out/sweep-threads-portrait" >/dev/null
rm -f "$out/sweep-threads-portrait/bench.png"
sed -i 's/^!\[latency\](bench.png)$//' "$out/sweep-threads-portrait/bench.md"
echo "== $out/sweep-threads-portrait"
