#!/usr/bin/env bash
# Emulated arm64 check of the Raspberry Pi install (not part of CI: it takes tens of minutes).
#
#   sudo nice -n 15 deploy/verify-arm64.sh [--root DIR] [--release bookworm]
#
# 1. builds a Debian arm64 root file system with debootstrap, run through qemu-user-static;
# 2. runs deploy/install.sh inside it via chroot, exactly as on a Pi (apt, user, venv, wheel
#    with the edge extra resolved from PyPI for aarch64, config, unit), with systemctl skipped
#    because no systemd runs in a chroot; picamera2 is absent from Debian's archive (it comes
#    from the Raspberry Pi archive) and the installer reports that;
# 3. under emulation (a Cortex-A72, as in a Pi 4): emopi --version, emopi doctor, one real
#    inference of the shipped int8 model plus a Haar detection, emopi bench --source
#    synthetic, and emopi run on the bundled demo source (the whole pipeline).
# This proves the aarch64 wheel set resolves, installs and imports against Bookworm's system
# numpy 1.x (the numpy<2 constraint). Timings go to stdout and to DIR/verify-arm64.log.
# Emulated speed is no measure of a Pi's: qemu-user runs aarch64 code 5-20x slower.
set -euo pipefail

ROOT_DIR=/var/tmp/emopi-arm64
RELEASE=bookworm
PYTHON=${EMOPI_PYTHON:-python3} # builds the wheel: needs setuptools and wheel
MIRROR=${EMOPI_DEBIAN_MIRROR:-http://deb.debian.org/debian}
while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT_DIR=$2; shift ;;
    --release) RELEASE=$2; shift ;;
    -h | --help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG=$ROOT_DIR.log
START=$SECONDS
T0=$SECONDS
[ "$(id -u)" = 0 ] || { echo "run as root (debootstrap and chroot need it)" >&2; exit 1; }
exec > >(tee "$LOG") 2>&1

step() {
  printf '\n=== [%4ds] %s (previous step: %ds)\n' "$((SECONDS - START))" "$*" "$((SECONDS - T0))"
  T0=$SECONDS
}

cleanup() {
  local m
  for m in dev/pts dev proc; do
    mountpoint -q "$ROOT_DIR/$m" && umount -l "$ROOT_DIR/$m"
  done
  return 0
}
trap cleanup EXIT

# A clean environment, except for proxy settings. QEMU_CPU: the emulated CPU model; a Pi 4's
# Cortex-A72 (no dotprod/i8mm) by default, so the kernels a Pi 4 runs are the ones tested.
QEMU_CPU=${EMOPI_QEMU_CPU:-cortex-a72}
in_root() {
  local keep=() v
  for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    [ -n "${!v:-}" ] && keep+=("$v=${!v}")
  done
  chroot "$ROOT_DIR" /usr/bin/env -i HOME=/root LANG=C.UTF-8 QEMU_CPU="$QEMU_CPU" "${keep[@]}" \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
}

step "host tools: debootstrap, qemu-user-static, binfmt-support"
need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
[ -e /usr/bin/qemu-aarch64-static ] || need+=(qemu-user-static)
command -v update-binfmts >/dev/null || need+=(binfmt-support)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
  mount binfmt_misc -t binfmt_misc /proc/sys/fs/binfmt_misc
fi
update-binfmts --enable qemu-aarch64 2>/dev/null || true
grep -q enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 ||
  { echo "qemu-aarch64 binfmt handler is not enabled" >&2; exit 1; }

step "debootstrap $RELEASE arm64 into $ROOT_DIR"
if [ -x "$ROOT_DIR/usr/bin/python3" ] && [ -f "$ROOT_DIR/.debootstrap-done" ]; then
  echo "reusing $ROOT_DIR"
else
  rm -rf "$ROOT_DIR"
  # python3-numpy stands in for what python3-picamera2 pulls on a Pi: the system numpy 1.24
  # that the numpy<2 constraint protects. systemd provides systemctl for the version probe.
  debootstrap --arch=arm64 --variant=minbase \
    --include=python3,python3-venv,python3-numpy,ca-certificates,systemd,passwd \
    "$RELEASE" "$ROOT_DIR" "$MIRROR"
  touch "$ROOT_DIR/.debootstrap-done"
fi
in_root uname -m
in_root python3 -c 'import sys, numpy; print(sys.version.split()[0], "numpy", numpy.__version__)'

step "mounts and payload"
# No /sys: it would be this x86 host's, and LiteRT's CPU detection (the cpuinfo library behind
# XNNPACK) crashes on x86 topology next to an aarch64 /proc/cpuinfo. Only qemu-user has this
# mismatch; nothing here needs sysfs (no camera in a chroot).
mount -t proc proc "$ROOT_DIR/proc"
mount --bind /dev "$ROOT_DIR/dev"
mount --bind /dev/pts "$ROOT_DIR/dev/pts"
cp -L /etc/resolv.conf "$ROOT_DIR/etc/resolv.conf"
[ -s "$ROOT_DIR/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost\n' >"$ROOT_DIR/etc/hosts"
# CAs added on this host (a TLS-inspecting proxy, a company CA) so pip reaches PyPI from the
# chroot as it does from here.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$ROOT_DIR/usr/local/share/ca-certificates/"
  in_root update-ca-certificates >/dev/null
fi
payload=$ROOT_DIR/root/emopi-payload
rm -rf "$payload"
mkdir -p "$payload"
"$PYTHON" -m pip wheel -q --no-deps --no-build-isolation -w "$payload" "$HERE" 2>/dev/null ||
  { echo "building the wheel with $PYTHON failed: set EMOPI_PYTHON to a Python with setuptools" >&2; exit 1; }
cp "$HERE/deploy/install.sh" "$HERE"/systemd/emopi.service "$HERE"/systemd/backoff-*.conf \
  "$payload/"
ls -la "$payload"

step "install.sh inside the arm64 chroot (systemctl skipped)"
in_root bash /root/emopi-payload/install.sh --no-systemctl --no-doctor

step "second run: idempotent"
in_root bash /root/emopi-payload/install.sh --no-systemctl --no-doctor | tail -n 3

step "installed versions"
in_root /opt/emopi/bin/emopi --version
in_root /opt/emopi/bin/python -c '
import importlib.metadata as m
for d in ("emopi", "ai-edge-litert", "opencv-python-headless", "numpy", "paho-mqtt", "amqtt"):
    try:
        print(f"{d:24} {m.version(d)}")
    except m.PackageNotFoundError:
        print(f"{d:24} MISSING")
import numpy; print("numpy in use:", numpy.__version__, numpy.__file__)'

step "emopi doctor (as the emopi user)"
in_root runuser -u emopi -- /opt/emopi/bin/emopi doctor || true

step "one inference of the shipped int8 model + a Haar detection"
in_root runuser -u emopi -- /opt/emopi/bin/python -c '
import time
t = time.perf_counter()
import numpy as np, cv2
from ai_edge_litert.interpreter import Interpreter
from emopi.edge.vision.haar import find_cascade
from emopi.edge.models import DEFAULT_MODEL
print(f"imports {time.perf_counter() - t:.1f} s")
gray = np.zeros((240, 320), np.uint8)
t = time.perf_counter()
faces = cv2.CascadeClassifier(str(find_cascade())).detectMultiScale(gray, 1.1, 5)
print(f"haar on 320x240: {len(faces)} faces, {1000 * (time.perf_counter() - t):.0f} ms")
it = Interpreter(model_path=str(DEFAULT_MODEL), num_threads=2)
it.allocate_tensors()
inp, out = it.get_input_details()[0], it.get_output_details()[0]
it.set_tensor(inp["index"], np.zeros(inp["shape"], inp["dtype"]))
it.invoke()
t = time.perf_counter()
for _ in range(5):
    it.invoke()
ms = 1000 * (time.perf_counter() - t) / 5
shape_in, shape_out = list(inp["shape"]), list(out["shape"])
print(f"int8 model {shape_in} -> {shape_out}: {ms:.1f} ms/invoke (emulated)")'

step "emopi bench --source synthetic (model only, emulated)"
if in_root /opt/emopi/bin/emopi bench --help 2>&1 | grep -q -- '--source'; then
  in_root runuser -u emopi -- /opt/emopi/bin/emopi bench --source synthetic --frames 100 \
    --warmup 10 --broker none --out /tmp/emopi-bench || echo "bench exited with $?"
else
  echo "emopi bench is not available in this build: covered by the inference step above"
fi

step "emopi run --source demo: the whole pipeline, events on stdout (emulated)"
in_root runuser -u emopi -- /opt/emopi/bin/emopi run --config /etc/emopi/emopi.toml \
  --source demo --max-frames 90 --quiet >"$ROOT_DIR/tmp/events.jsonl" ||
  echo "emopi run exited with $?"
echo "$(wc -l <"$ROOT_DIR/tmp/events.jsonl") events; first: $(head -c 300 "$ROOT_DIR/tmp/events.jsonl")"

step "done"
echo "total $((SECONDS - START)) s; log: $LOG"
rm -rf "$payload"
echo "root file system kept at $ROOT_DIR for reruns (rm -rf it to free ~1 GB)"
