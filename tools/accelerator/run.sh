#!/usr/bin/env bash
# On the GPU machine (JAX backend): train the ResNet-18 teacher, then distil both students
# from it online, in parallel, and leave the .keras students and one summary.json in OUT.
# Int8 conversion is a TensorFlow step: run `emopi quantize` on the workstation afterwards.
#   bash tools/accelerator/run.sh OUT [TEACHER_EPOCHS] [STUDENT_EPOCHS]
# Test it on a CPU first with a tiny data file: ACCEL_DATA=tiny.npz bash ... OUT 1 1
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$1 teacher_epochs=${2:-60} student_epochs=${3:-70}
data=${ACCEL_DATA:-.accel/fer.npz}
runs=${ACCEL_RUNS:-/tmp/emopi-runs}
mkdir -p "$out" "$runs"
. tools/accelerator/env.sh >"$out/log.txt"  # sourced: its exports stay
cat "$out/log.txt"

train() {  # NAME ARCH EPOCHS [extra flags]
  local name=$1 arch=$2 epochs=$3
  shift 3
  python3 -m emopi.edge.cli train --data "$data" --arch "$arch" --epochs "$epochs" \
    --out "$runs" --name "$name" "$@" >"$runs/$name.out" 2>&1
}

start=$SECONDS
train teacher resnet18 "$teacher_epochs" || { tail -30 "$runs/teacher.out"; exit 1; }
echo "teacher: $((SECONDS - start)) s" | tee -a "$out/log.txt"
teacher=$runs/teacher/best.keras
train emonet emonet "$student_epochs" --teacher "$teacher" &
train emonet-small emonet-small "$student_epochs" --teacher "$teacher" &
status=0
for job in $(jobs -p); do wait "$job" || status=1; done
echo "students: $((SECONDS - start)) s, status $status" | tee -a "$out/log.txt"
for name in emonet emonet-small; do
  [ -f "$runs/$name/best.keras" ] && cp "$runs/$name/best.keras" "$out/$name.keras"
  tail -5 "$runs/$name.out" >>"$out/log.txt"
done
python3 - "$runs" "$out/summary.json" <<'PY'
import csv, json, sys
from pathlib import Path
runs, summary = Path(sys.argv[1]), {}
for run in ("teacher", "emonet", "emonet-small"):
    folder = runs / run
    entry = {}
    for name in ("metrics.json", "versions.json", "config.json", "best.json"):
        if (folder / name).is_file():
            entry[name[:-5]] = json.loads((folder / name).read_text())
    if (folder / "history.csv").is_file():
        with (folder / "history.csv").open() as fh:
            entry["history"] = list(csv.DictReader(fh))
    summary[run] = entry
Path(sys.argv[2]).write_text(json.dumps(summary, indent=1))
PY
exit $status
