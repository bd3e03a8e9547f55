#!/usr/bin/env bash
# Reproduce benchmarks/results/ on this machine, one measurement at a time (never two at once).
#
#   bash benchmarks/run_results.sh [VIDEO] [FER_PYTHON]
#
# VIDEO defaults to ../shared/data/video/liveportrait_d3.mp4 (512x512); a 640x480 copy of it
# (the issue's target frame size) is made in a temporary folder and deleted afterwards.
# FER_PYTHON is the python of the peer venv with `fer` (benchmarks/README.md); without it the
# fer comparison is skipped. Stop other CPU users first: the figures assume an idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
video=${1:-../shared/data/video/liveportrait_d3.mp4}
fer_python=${2:-${FER_PYTHON:-/work/fer-venv/bin/python}}
out=benchmarks/results
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
[ -f "$video" ] || { echo "run_results: $video not found" >&2; exit 1; }
export EMOPI_CONFIG=/dev/null # the built-in defaults, whatever /etc/emopi holds

python benchmarks/pad_video.py "$video" "$tmp/video-640x480.mp4"
bench() { # OUT_NAME ARGS...: one `emopi bench`, results without the PNG (kept small)
  local name=$1
  shift
  emopi bench --out "$out/$name" "$@" >/dev/null
  rm -f "$out/$name/bench.png"
  sed -i 's/^!\[latency\](bench.png)$//' "$out/$name/bench.md"
  echo "== $out/$name"
}
bench video-512 --source "$video" --threads 1
bench video-640x480 --source "$tmp/video-640x480.mp4" --threads 1
bench video-640x480-float --source "$tmp/video-640x480.mp4" --threads 1 --compare float
bench video-640x480-no-broker --source "$tmp/video-640x480.mp4" --threads 1 --broker none
bench synthetic --source synthetic --threads 1 --frames 1000 --compare float
bench sweep-threads --source "$tmp/video-640x480.mp4" --sweep threads=1,2,4
bench sweep-detect-width --source "$tmp/video-640x480.mp4" --sweep detect-width=240,320,480
if [ -x "$fer_python" ]; then
  python benchmarks/compare_fer.py "$tmp/video-640x480.mp4" --fer-python "$fer_python" \
    --out "$out/fer-640x480" >/dev/null
  python benchmarks/compare_fer.py "$video" --fer-python "$fer_python" --out "$out/fer-512" \
    >/dev/null
  echo "== $out/fer-640x480 $out/fer-512"
else
  echo "run_results: no fer venv at $fer_python; skipped the fer comparison" >&2
fi
