#!/usr/bin/env bash
# Install (or upgrade, or remove) emopi as a systemd service on Raspberry Pi OS / Debian, 64-bit.
#
#   sudo ./install.sh [--wheel emopi-X.whl] [--config my.toml] [--model m.tflite]
#   sudo ./install.sh --dry-run          # print every step, change nothing
#   sudo ./install.sh --uninstall        # remove all but the config and the state
#
# Idempotent: a second run with the same inputs changes nothing. Every pitfall it handles:
#   - 32-bit OS: refused. ai-edge-litert (the successor of tflite-runtime, which has no wheels
#     for Python >= 3.12) publishes Linux ARM wheels only for aarch64.
#   - picamera2 cannot be pip-installed (it needs the system libcamera bindings): it comes from
#     apt, and the venv is made with --system-site-packages so it is importable.
#   - Bookworm's apt simplejpeg/picamera2 are built against numpy 1.x: pip gets `numpy<2`
#     there, so pip keeps the system numpy and picks an OpenCV wheel that accepts it.
#   - Haar cascade XMLs: shipped in the opencv-python-headless<5 wheel; if they are missing,
#     `emopi doctor` (run at the end) says so and `apt install opencv-data` is the fallback.
#   - camera permissions: the service user is in group video (and render), and the unit's
#     device allow-list covers /dev/video*, /dev/media*, /dev/v4l-subdev*, /dev/dma_heap/*.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The unit and drop-ins: beside this script (a deploy payload) or in ../systemd (a checkout).
UNIT_SRC_DIRS=("$SCRIPT_DIR")
[ -d "$SCRIPT_DIR/../systemd" ] && UNIT_SRC_DIRS+=("$(cd "$SCRIPT_DIR/../systemd" && pwd)")
PROG=$(basename "$0")
ARGS=("$@")

usage() {
  cat <<EOF
Usage: sudo $PROG [options]

Installs emopi into a venv at /opt/emopi, the config at /etc/emopi/emopi.toml (never
overwritten), the systemd unit emopi.service, enables and starts it, then runs emopi doctor.

Options:
  --wheel PATH        emopi wheel to install (default: newest emopi-*.whl beside this script)
  --config PATH       config to install when /etc/emopi/emopi.toml does not exist yet
                      (default: the template shipped in the wheel)
  --force-config      replace an existing config with --config (old one kept as .bak)
  --model PATH        install this .tflite (and its .json sidecar) as the service's model
  --find-links DIR    also look for wheels in DIR (an offline wheelhouse)
  --no-index          do not use package indexes (only --find-links)
  --no-deps           install only the emopi wheel, not its dependencies
  --python PATH       interpreter for the venv (default: /usr/bin/python3)
  --reinstall         reinstall the wheel even if this exact wheel is installed
  --prefix DIR        install under DIR instead of / (test installs; implies nothing else)
  --no-apt            do not install apt packages
  --no-user           do not create the emopi system user
  --no-systemctl      install the unit but do not run systemctl
  --no-doctor         do not run emopi doctor at the end
  --dry-run           print every step and command, change nothing
  --uninstall         stop and remove the service, venv, unit and user; keep config and state
  -h, --help          this text

Test hooks (environment): EMOPI_OS_RELEASE=FILE replaces /etc/os-release,
EMOPI_ARCH=ARCH replaces the detected architecture (dpkg --print-architecture / uname -m),
EMOPI_ASSUME_SYSTEMD=1 uses the systemctl on PATH even where systemd is not running.
EOF
}

# ---------------------------------------------------------------------------- arguments
WHEEL="" CONFIG="" MODEL="" PREFIX="" PYTHON=/usr/bin/python3
FORCE_CONFIG=0 REINSTALL=0 DRY_RUN=0 UNINSTALL=0
DO_APT=1 DO_USER=1 DO_SYSTEMCTL=1 DO_DOCTOR=1
PIP_OPTS=()

die() {
  echo "$PROG: error: $*" >&2
  exit 1
}
need_arg() { if [ $# -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value"; fi; }

while [ $# -gt 0 ]; do
  case "$1" in
    --wheel) need_arg "$@"; WHEEL=$2; shift ;;
    --config) need_arg "$@"; CONFIG=$2; shift ;;
    --model) need_arg "$@"; MODEL=$2; shift ;;
    --find-links) need_arg "$@"; PIP_OPTS+=(--find-links "$2"); shift ;;
    --python) need_arg "$@"; PYTHON=$2; shift ;;
    --prefix) need_arg "$@"; PREFIX=${2%/}; shift ;;
    --no-index) PIP_OPTS+=(--no-index) ;;
    --no-deps) PIP_OPTS+=(--no-deps) ;;
    --force-config) FORCE_CONFIG=1 ;;
    --reinstall) REINSTALL=1 ;;
    --no-apt) DO_APT=0 ;;
    --no-user) DO_USER=0 ;;
    --no-systemctl) DO_SYSTEMCTL=0 ;;
    --no-doctor) DO_DOCTOR=0 ;;
    --dry-run) DRY_RUN=1 ;;
    --uninstall) UNINSTALL=1 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done

SERVICE=emopi.service
SERVICE_USER=emopi
VENV=$PREFIX/opt/emopi
ETC=$PREFIX/etc/emopi
CONF=$ETC/emopi.toml
MODELS=$ETC/models
UNIT_DIR=$PREFIX/etc/systemd/system
UNIT=$UNIT_DIR/$SERVICE
DROPIN_DIR=$UNIT_DIR/$SERVICE.d
STAMP=$VENV/.emopi-wheel.sha256
CONSTRAINTS=$VENV/emopi-constraints.txt
CHANGES=0
RESTART_NEEDED=0

# ---------------------------------------------------------------------------- helpers
step() { printf '\n==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
warn() { printf '    ! %s\n' "$*" >&2; }

# Print a command; run it unless --dry-run. Every call is a change to the system.
change() {
  printf '    +'
  printf ' %q' "$@"
  printf '\n'
  CHANGES=$((CHANGES + 1))
  [ "$DRY_RUN" = 1 ] || "$@"
}

# Print and run a command that refreshes caches only (not counted as a change).
refresh() {
  printf '    +'
  printf ' %q' "$@"
  printf '\n'
  [ "$DRY_RUN" = 1 ] || "$@"
}

# Write line $1 to file $2 (a change).
write_text() {
  printf '    + echo %q > %q\n' "$1" "$2"
  CHANGES=$((CHANGES + 1))
  [ "$DRY_RUN" = 1 ] || printf '%s\n' "$1" >"$2"
}

# Install file $1 as $2 with mode $3 and group $4 when its content differs; 0 = changed.
install_file() {
  local src=$1 dst=$2 mode=$3 group=$4
  if [ -f "$dst" ] && cmp -s "$src" "$dst"; then
    fix_owner "$dst" "$mode" "$group"
    note "= $dst unchanged"
    return 1
  fi
  install_owned "$group" -D -m "$mode" "$src" "$dst"
  return 0
}

# install(1) as root:$1; without owner flags for a --prefix test install by a normal user.
install_owned() {
  local group=$1
  shift
  if [ "$(id -u)" = 0 ]; then change install -o root -g "$group" "$@"; else change install "$@"; fi
}

# Ensure owner root:$group and mode $mode (a reinstalled user may have a new gid).
fix_owner() {
  local path=$1 mode=$2 group=$3 want have
  [ "$(id -u)" = 0 ] || return 0
  want="$mode root:$group"
  have=$(stat -c '0%a %U:%G' "$path" 2>/dev/null || true)
  [ "$have" = "$want" ] || change chown "root:$group" "$path"
  [ "$have" = "$want" ] || change chmod "$mode" "$path"
}

has_user() { getent passwd "$SERVICE_USER" >/dev/null 2>&1; }
config_group() { if [ "$DO_USER" = 1 ] && { has_user || [ "$DRY_RUN" = 1 ]; }; then echo "$SERVICE_USER"; else echo root; fi; }
systemd_running() {
  { [ -d /run/systemd/system ] || [ "${EMOPI_ASSUME_SYSTEMD:-}" = 1 ]; } && command -v systemctl >/dev/null 2>&1
}

find_unit_file() { # path of unit file $1 in UNIT_SRC_DIRS
  local d
  for d in "${UNIT_SRC_DIRS[@]}"; do [ -f "$d/$1" ] && { echo "$d/$1"; return 0; }; done
  die "$1 not found beside $PROG or in ../systemd/"
}

# ---------------------------------------------------------------------------- platform
OS_RELEASE=${EMOPI_OS_RELEASE:-/etc/os-release}
OS_ID="" OS_LIKE="" OS_CODENAME="" OS_PRETTY="unknown OS"

# shellcheck disable=SC1090  # os-release is shell syntax by specification
detect_os() {
  if [ -r "$OS_RELEASE" ]; then
    OS_ID=$(. "$OS_RELEASE" && echo "${ID:-}")
    OS_LIKE=$(. "$OS_RELEASE" && echo "${ID_LIKE:-}")
    OS_CODENAME=$(. "$OS_RELEASE" && echo "${VERSION_CODENAME:-}")
    OS_PRETTY=$(. "$OS_RELEASE" && echo "${PRETTY_NAME:-$ID}")
  fi
}

# The userland architecture decides: a 32-bit Raspberry Pi OS may run a 64-bit kernel
# (uname -m says aarch64) while every library, Python included, is armhf.
detect_arch() {
  if [ -n "${EMOPI_ARCH:-}" ]; then
    echo "$EMOPI_ARCH"
  elif command -v dpkg >/dev/null 2>&1; then
    dpkg --print-architecture
  else
    uname -m
  fi
}

check_platform() {
  detect_os
  ARCH=$(detect_arch)
  case "$ARCH" in
    arm64 | aarch64) ARCH=arm64 ;;
    amd64 | x86_64) ARCH=amd64 ;;
    armhf | armel | arm | armv6l | armv7l | armv8l)
      die "32-bit OS detected ($ARCH, $OS_PRETTY): emopi needs a 64-bit OS because" \
        "ai-edge-litert, its TFLite runtime, publishes Linux ARM wheels only for aarch64." \
        "Flash 'Raspberry Pi OS (64-bit)' (Pi 3, 4, 5, Zero 2 W) and run this again." ;;
    *) die "unsupported architecture $ARCH: emopi runs on arm64 (Raspberry Pi) or amd64" ;;
  esac
  case "$OS_ID $OS_LIKE" in
    *debian* | *raspbian*) ;;
    *) warn "$OS_PRETTY is not Debian or Raspberry Pi OS: apt steps may not fit" ;;
  esac
  case "$OS_CODENAME" in
    bookworm) EXPECT_PY=3.11 ;;
    trixie) EXPECT_PY=3.13 ;;
    *) EXPECT_PY="" ; warn "untested release '${OS_CODENAME:-?}': Bookworm and Trixie are tested" ;;
  esac
}

check_python() {
  if [ ! -x "$PYTHON" ]; then
    [ "$DRY_RUN" = 1 ] && { PY_VER=${EXPECT_PY:-?}; note "$PYTHON not found (dry run)"; return; }
    die "$PYTHON not found: apt install python3 (or pass --python PATH)"
  fi
  PY_VER=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
    die "$PYTHON is Python $PY_VER; emopi needs Python >= 3.10"
  if [ -n "${EXPECT_PY:-}" ] && [ "$PY_VER" != "$EXPECT_PY" ]; then
    warn "$OS_CODENAME normally has Python $EXPECT_PY, $PYTHON is $PY_VER"
  fi
}

# Bad input fails before anything changes.
check_inputs() {
  if [ -n "$CONFIG" ] && [ ! -f "$CONFIG" ]; then die "config $CONFIG does not exist"; fi
  if [ -n "$MODEL" ]; then
    case "$MODEL" in *.tflite) ;; *) die "model $MODEL is not a .tflite file" ;; esac
    [ -f "$MODEL" ] || die "model $MODEL does not exist"
    [ -f "${MODEL%.tflite}.json" ] || die "model $MODEL has no metadata sidecar ${MODEL%.tflite}.json"
  fi
  local i
  for ((i = 0; i < ${#PIP_OPTS[@]}; i++)); do
    if [ "${PIP_OPTS[$i]}" = --find-links ] && [ ! -d "${PIP_OPTS[$((i + 1))]}" ]; then
      die "wheelhouse ${PIP_OPTS[$((i + 1))]} is not a directory"
    fi
  done
}

# ---------------------------------------------------------------------------- steps
apt_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
apt_available() { apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: //p' | grep -qv '(none)'; }

APT_UPDATED=0
apt_install() { # apt_install PKG [apt options...]: install when missing and available; 1 = unavailable
  local pkg=$1
  shift
  if apt_installed "$pkg"; then
    note "= $pkg already installed"
    return 0
  fi
  if ! apt_available "$pkg" && [ "$APT_UPDATED" = 0 ]; then
    refresh apt-get update -qq
    APT_UPDATED=1
  fi
  if ! apt_available "$pkg" && [ "$DRY_RUN" = 0 ]; then
    return 1
  fi
  change env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" "$pkg"
}

step_apt() {
  step "apt packages"
  if [ "$DO_APT" = 0 ]; then
    note "skipped (--no-apt)"
    return
  fi
  command -v apt-get >/dev/null 2>&1 || { warn "no apt-get: skipping system packages"; return; }
  apt_install python3-venv || die "python3-venv is not available from apt"
  # picamera2 comes only from the Raspberry Pi apt repository; without recommends it does not
  # pull the desktop preview stack (Qt, OpenGL), which a headless kiosk does not need.
  if ! apt_install python3-picamera2 --no-install-recommends; then
    warn "python3-picamera2 is not available from apt (not Raspberry Pi OS?): the Pi camera"
    warn "module will not work; USB webcams (V4L2), video files and --source demo still do"
  fi
}

step_user() {
  step "system user $SERVICE_USER"
  if [ "$DO_USER" = 0 ]; then
    note "skipped (--no-user)"
    return
  fi
  if has_user; then
    note "= user $SERVICE_USER exists"
  else
    change useradd --system --user-group --home-dir /var/lib/emopi --no-create-home \
      --shell /usr/sbin/nologin --comment "emopi service" "$SERVICE_USER"
  fi
  local g groups=()
  for g in video render; do
    getent group "$g" >/dev/null 2>&1 || continue
    if has_user && id -nG "$SERVICE_USER" | tr ' ' '\n' | grep -qx "$g"; then
      note "= $SERVICE_USER is in group $g"
    else
      groups+=("$g")
    fi
  done
  if [ ${#groups[@]} -gt 0 ]; then
    change usermod --append --groups "$(IFS=,; echo "${groups[*]}")" "$SERVICE_USER"
  fi
}

venv_ok() { # the existing venv fits: works, sees system packages, same Python version
  [ -x "$VENV/bin/python" ] || return 1
  grep -qx 'include-system-site-packages = true' "$VENV/pyvenv.cfg" 2>/dev/null || return 1
  [ "$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$PY_VER" ]
}

step_venv() {
  step "venv $VENV (--system-site-packages, so apt's picamera2 is importable)"
  if venv_ok; then
    note "= venv exists (Python $PY_VER)"
    return
  fi
  if [ -e "$VENV" ]; then
    note "existing venv does not fit (other Python or no system packages): recreating"
    change rm -rf "$VENV"
  fi
  change "$PYTHON" -m venv --system-site-packages "$VENV"
}

pick_wheel() {
  if [ -z "$WHEEL" ]; then
    WHEEL=$(find "$SCRIPT_DIR" -maxdepth 1 -name 'emopi-*.whl' -printf '%T@ %p\n' | sort -rn |
      head -n 1 | cut -d' ' -f2-)
    [ -n "$WHEEL" ] || die "no emopi wheel given and none beside $PROG: pass --wheel PATH"
  fi
  [ -f "$WHEEL" ] || die "wheel $WHEEL does not exist"
  case "$WHEEL" in *.whl) ;; *) die "$WHEEL is not a wheel (.whl)" ;; esac
}

step_wheel() {
  step "emopi wheel $(basename "$WHEEL")"
  local sha
  sha=$(sha256sum "$WHEEL" | cut -d' ' -f1)
  if [ "$REINSTALL" = 0 ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$sha" ]; then
    note "= this wheel is installed (sha256 ${sha:0:12})"
    return
  fi
  local pip=("$VENV/bin/python" -m pip install --disable-pip-version-check --no-input)
  if [ "$OS_CODENAME" = bookworm ]; then
    # Bookworm's apt simplejpeg/picamera2 are compiled against numpy 1.x; numpy 2 breaks them.
    if [ "$(cat "$CONSTRAINTS" 2>/dev/null)" != "numpy<2" ]; then
      write_text "numpy<2" "$CONSTRAINTS"
    fi
    pip+=(--constraint "$CONSTRAINTS")
  fi
  local o no_deps=0
  for o in "${PIP_OPTS[@]}"; do
    if [ "$o" = --no-deps ]; then no_deps=1; else pip+=("$o"); fi
  done
  if [ "$no_deps" = 0 ]; then
    # Resolves and installs the edge dependencies (only what is missing or too old).
    change "${pip[@]}" "${WHEEL}[edge]"
  fi
  # Same version number, new build (re-deploy of a work tree): replace emopi itself.
  change "${pip[@]}" --no-deps --force-reinstall "$WHEEL"
  write_text "$sha" "$STAMP"
  RESTART_NEEDED=1
}

template_config() { # the default config shipped inside the installed wheel
  "$VENV/bin/python" -c 'from emopi.edge.assets import ASSETS; print(ASSETS / "emopi.toml")' \
    2>/dev/null || true
}

step_config() {
  step "config $CONF (never overwritten)"
  local group src
  group=$(config_group)
  [ -d "$ETC" ] || change install -d -m 0755 "$ETC"
  src=$CONFIG
  if [ -z "$src" ]; then
    src=$(template_config)
    if [ "$DRY_RUN" = 1 ] && [ ! -f "$src" ]; then
      src="$VENV/lib/python$PY_VER/site-packages/emopi/edge/assets/emopi.toml"
    fi
  fi
  if [ -f "$CONF" ]; then
    if [ -n "$CONFIG" ] && ! cmp -s "$CONFIG" "$CONF"; then
      if [ "$FORCE_CONFIG" = 1 ]; then
        change cp -p "$CONF" "$CONF.bak"
        install_owned "$group" -m 0640 "$CONFIG" "$CONF"
        RESTART_NEEDED=1
        return
      fi
      install_file "$CONFIG" "$CONF.new" 0640 "$group" || true
      note "kept the existing config; the one given differs and is at $CONF.new"
      note "(merge it by hand, or rerun with --force-config)"
    else
      note "= existing config kept"
    fi
    fix_owner "$CONF" 0640 "$group"
    return
  fi
  if [ "$DRY_RUN" = 1 ] && [ ! -f "$src" ]; then
    install_owned "$group" -m 0640 "$src" "$CONF"
    return
  fi
  [ -f "$src" ] || die "no config to install: the wheel has no emopi/edge/assets/emopi.toml; pass --config FILE"
  install_owned "$group" -m 0640 "$src" "$CONF"
  RESTART_NEEDED=1
}

step_model() {
  [ -n "$MODEL" ] || return 0
  step "model $(basename "$MODEL") -> $MODELS"
  local sidecar=${MODEL%.tflite}.json group name tmp
  name=$(basename "$MODEL")
  group=$(config_group)
  [ -d "$MODELS" ] || change install -d -m 0755 "$MODELS"
  install_file "$MODEL" "$MODELS/$name" 0640 "$group" && RESTART_NEEDED=1
  install_file "$sidecar" "$MODELS/$(basename "$sidecar")" 0640 "$group" && RESTART_NEEDED=1
  # The environment outranks the config file, so the service uses this model whatever
  # [classify] model says; remove the drop-in to go back to the config's choice.
  tmp=$(mktemp)
  printf '# Written by install.sh --model: the model the service runs.\n[Service]\n%s\n' \
    "Environment=EMOPI_CLASSIFY_MODEL=$MODELS/$name" >"$tmp"
  install_file "$tmp" "$DROPIN_DIR/20-model.conf" 0644 root && UNIT_CHANGED=1
  rm -f "$tmp"
}

systemd_version() {
  if command -v systemctl >/dev/null 2>&1; then
    systemctl --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p'
  elif [ "$OS_CODENAME" = bookworm ]; then
    echo 252
  else
    echo 257
  fi
}

UNIT_CHANGED=0
step_unit() {
  step "systemd unit $UNIT"
  local unit_src tmp version dropin
  unit_src=$(find_unit_file "$SERVICE")
  version=$(systemd_version)
  # RestartSteps= (exponential back-off) exists from systemd 254 (Trixie); Bookworm has 252.
  if [ "${version:-0}" -ge 254 ]; then dropin=backoff-steps.conf; else dropin=backoff-fixed.conf; fi
  dropin=$(find_unit_file "$dropin")
  if [ -n "$PREFIX" ]; then
    # A --prefix install points the unit at the prefixed venv and config.
    tmp=$(mktemp)
    sed -e "s#/opt/emopi/#$PREFIX/opt/emopi/#g" -e "s#/etc/emopi/emopi.toml#$CONF#g" \
      "$unit_src" >"$tmp"
    install_file "$tmp" "$UNIT" 0644 root && UNIT_CHANGED=1
    rm -f "$tmp"
  else
    install_file "$unit_src" "$UNIT" 0644 root && UNIT_CHANGED=1
  fi
  note "back-off drop-in for systemd ${version:-?}: $(basename "$dropin")"
  install_file "$dropin" "$DROPIN_DIR/10-backoff.conf" 0644 root && UNIT_CHANGED=1
  [ "$UNIT_CHANGED" = 0 ] || RESTART_NEEDED=1
}

step_service() {
  step "service $SERVICE"
  if [ "$DO_SYSTEMCTL" = 0 ]; then
    note "skipped (--no-systemctl): start it with systemctl enable --now $SERVICE"
    return
  fi
  if ! systemd_running && [ "$DRY_RUN" = 0 ]; then
    warn "systemd is not running here (chroot or container): unit installed, not started"
    return
  fi
  [ "$UNIT_CHANGED" = 0 ] || change systemctl daemon-reload
  if systemctl is-enabled --quiet "$SERVICE" 2>/dev/null; then
    note "= enabled"
  else
    change systemctl enable "$SERVICE"
  fi
  if [ "$RESTART_NEEDED" = 1 ] || ! systemctl is-active --quiet "$SERVICE" 2>/dev/null; then
    # --no-block: a Type=notify start waits for READY=1; we poll below with a bound instead.
    change systemctl reset-failed "$SERVICE"
    change systemctl restart --no-block "$SERVICE"
  else
    note "= running, nothing changed: not restarted"
  fi
  [ "$DRY_RUN" = 1 ] && return
  local state _
  for _ in $(seq 1 90); do
    state=$(systemctl is-active "$SERVICE" 2>/dev/null || true)
    case "$state" in active | failed) break ;; esac
    sleep 1
  done
  note "$SERVICE is $state"
  if [ "$state" != active ]; then
    journalctl -u "$SERVICE" -n 20 --no-pager 2>/dev/null | sed 's/^/    | /' || true
    warn "$SERVICE did not become active: see journalctl -u $SERVICE"
  fi
}

step_doctor() {
  step "emopi doctor"
  if [ "$DO_DOCTOR" = 0 ]; then
    note "skipped (--no-doctor)"
    return
  fi
  if [ "$DRY_RUN" = 1 ]; then
    note "+ $VENV/bin/emopi doctor"
    return
  fi
  # As the service user when there is one, so camera permissions are checked for real.
  if [ "$DO_USER" = 1 ] && has_user && [ "$(id -u)" = 0 ] && command -v runuser >/dev/null; then
    runuser -u "$SERVICE_USER" -- "$VENV/bin/emopi" doctor | sed 's/^/    /' || true
  else
    "$VENV/bin/emopi" doctor | sed 's/^/    /' || true
  fi
}

# ---------------------------------------------------------------------------- uninstall
uninstall() {
  step "uninstall (keeps $CONF, $MODELS and /var/lib/emopi)"
  if [ "$DO_SYSTEMCTL" = 1 ] && systemd_running && [ -f "$UNIT" ]; then
    change systemctl disable --now "$SERVICE"
  fi
  [ -f "$UNIT" ] && change rm -f "$UNIT"
  local f
  for f in 10-backoff.conf 20-model.conf; do
    [ -f "$DROPIN_DIR/$f" ] && change rm -f "$DROPIN_DIR/$f"
  done
  # Drop-ins of your own (systemctl edit) are configuration: they stay.
  [ -d "$DROPIN_DIR" ] && [ -z "$(ls -A "$DROPIN_DIR")" ] && change rmdir "$DROPIN_DIR"
  if [ "$DO_SYSTEMCTL" = 1 ] && systemd_running; then
    change systemctl daemon-reload
    systemctl reset-failed "$SERVICE" 2>/dev/null || true
  fi
  [ -e "$VENV" ] && change rm -rf "$VENV"
  if [ "$DO_USER" = 1 ] && has_user; then
    change userdel "$SERVICE_USER"
  fi
  [ -e "$CONF" ] && note "kept $CONF"
  [ -d "$MODELS" ] && note "kept $MODELS"
  [ -d "$PREFIX/var/lib/emopi" ] && note "kept $PREFIX/var/lib/emopi (offline spool)"
  return 0
}

# ---------------------------------------------------------------------------- main
main() {
  if [ "$(id -u)" != 0 ] && [ "$DRY_RUN" = 0 ]; then
    if [ -z "$PREFIX" ] || [ "$DO_APT" = 1 ] || [ "$DO_USER" = 1 ] || [ "$DO_SYSTEMCTL" = 1 ]; then
      die "run as root: sudo $0 ${ARGS[*]}"
    fi
  fi
  [ "$DRY_RUN" = 1 ] && echo "$PROG: dry run: printing every step, changing nothing"
  if [ "$UNINSTALL" = 1 ]; then
    uninstall
    printf '\n%s: uninstalled (%d changes%s)\n' "$PROG" "$CHANGES" "$([ "$DRY_RUN" = 1 ] && echo ', dry run')"
    return
  fi
  check_inputs
  check_platform
  pick_wheel
  check_python
  echo "$PROG: $OS_PRETTY, $ARCH, Python $PY_VER ($PYTHON), prefix ${PREFIX:-/}"
  step_apt
  step_user
  step_venv
  step_wheel
  step_config
  step_model
  step_unit
  step_service
  step_doctor
  printf '\n%s: done (%d changes%s)\n' "$PROG" "$CHANGES" "$([ "$DRY_RUN" = 1 ] && echo ', dry run')"
}

main
