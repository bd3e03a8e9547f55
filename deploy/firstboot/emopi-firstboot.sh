#!/usr/bin/env bash
# First boot, network up: install emopi from the payload that `emopi deploy --stage` put on the
# SD card's boot partition (BOOT/emopi: wheel, install.sh, unit, config, install-args).
#
# Started by emopi-firstboot.service (Bookworm, enabled by emopi-firstrun.sh) or by cloud-init's
# runcmd (Trixie, see user-data). Runs once: on success it renames install-args to
# install-args.done and disables its unit; on failure it leaves both, logs why, and the next
# boot (or `systemctl start emopi-firstboot`) tries again.
#
# Test hooks (environment): EMOPI_BOOT=DIR replaces the boot partition,
# EMOPI_FIRSTBOOT_ARGS adds install.sh arguments (e.g. --prefix DIR --no-apt).
set -euo pipefail

find_boot() {
  local d
  for d in "${EMOPI_BOOT:-}" /boot/firmware /boot; do
    [ -n "$d" ] && [ -d "$d/emopi" ] && { echo "$d"; return 0; }
  done
  return 1
}

BOOT=$(find_boot) || { echo "emopi-firstboot: no emopi/ payload on the boot partition" >&2; exit 1; }
PAYLOAD=$BOOT/emopi
LOG=${EMOPI_FIRSTBOOT_LOG:-/var/log/emopi-firstboot.log}

if [ ! -f "$PAYLOAD/install-args" ]; then
  echo "emopi-firstboot: already done ($PAYLOAD/install-args.done)"
  exit 0
fi

# The boot partition is FAT: copy the payload to a real file system before running it.
work=$(mktemp -d /tmp/emopi-firstboot.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -r "$PAYLOAD"/. "$work/"
read -r -a args <"$PAYLOAD/install-args"
# shellcheck disable=SC2206  # word splitting of the test hook is intended
extra=(${EMOPI_FIRSTBOOT_ARGS:-})

mkdir -p "$(dirname "$LOG")"
echo "emopi-firstboot: $(date -Is) installing from $PAYLOAD (log: $LOG)"
cd "$work"
set +e
bash ./install.sh "${args[@]}" "${extra[@]}" 2>&1 | tee -a "$LOG"
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" != 0 ]; then
  echo "emopi-firstboot: install.sh failed (exit $rc); it runs again at the next boot" >&2
  exit "$rc"
fi
mv "$PAYLOAD/install-args" "$PAYLOAD/install-args.done"
if [ -z "${EMOPI_BOOT:-}" ] && command -v systemctl >/dev/null 2>&1; then
  systemctl disable emopi-firstboot.service 2>/dev/null || true
fi
echo "emopi-firstboot: done"
