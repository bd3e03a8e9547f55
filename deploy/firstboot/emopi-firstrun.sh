#!/bin/bash
# Bookworm first-run hook: the kernel command line runs it once, early, on the first boot
#   systemd.run=/boot/firmware/emopi/emopi-firstrun.sh systemd.run_success_action=reboot
#   systemd.unit=kernel-command-line.target
# (`emopi deploy --stage BOOTFS` puts that in cmdline.txt, in place of Raspberry Pi Imager's
# own firstrun.sh, which this script then runs first, so Imager's settings still apply).
#
# 1. Raspberry Pi Imager's OS customisation (hostname, user, SSH key, Wi-Fi, locale), if any;
# 2. else the same settings from emopi/firstboot.env (see firstboot.env.example);
# 3. installs and enables emopi-firstboot.service, which installs emopi after the reboot that
#    follows, once the network is up;
# 4. removes the hook from cmdline.txt, so it never runs again.
#
# Test hooks (environment): EMOPI_BOOT=DIR replaces the boot partition, EMOPI_ROOT=DIR the
# root file system.
set +e

BOOT=${EMOPI_BOOT:-/boot/firmware}
ROOT=${EMOPI_ROOT:-}
CUSTOM=/usr/lib/raspberrypi-sys-mods/imager_custom

log() { echo "emopi-firstrun: $*"; }

# 1. Imager's script deletes itself and strips systemd.run* from cmdline.txt when it is done.
if [ -f "$BOOT/firstrun.sh" ]; then
  log "running Raspberry Pi Imager's firstrun.sh"
  bash "$BOOT/firstrun.sh"
fi

# 2. Settings without Imager: the same helper Imager uses (raspberrypi-sys-mods).
ENV_FILE=$BOOT/emopi/firstboot.env
if [ -f "$ENV_FILE" ]; then
  # shellcheck disable=SC1090
  . "$ENV_FILE"
  if [ -x "$CUSTOM" ]; then
    [ -n "${EMOPI_HOSTNAME:-}" ] && "$CUSTOM" set_hostname "$EMOPI_HOSTNAME"
    [ -n "${EMOPI_SSH_KEY:-}" ] && "$CUSTOM" enable_ssh -k "$EMOPI_SSH_KEY"
    if [ -n "${EMOPI_WIFI_SSID:-}" ]; then
      "$CUSTOM" set_wlan "$EMOPI_WIFI_SSID" "${EMOPI_WIFI_PASSWORD:-}" "${EMOPI_WIFI_COUNTRY:-GB}"
    fi
    [ -n "${EMOPI_TIMEZONE:-}" ] && "$CUSTOM" set_timezone "$EMOPI_TIMEZONE"
  else
    log "$CUSTOM not found: firstboot.env settings skipped (use Imager's customisation)"
  fi
  if [ -n "${EMOPI_SSH_KEY:-}" ] && [ -f /usr/lib/userconf-pi/userconf ]; then
    # A locked password: key-only login, and the first-boot user wizard is skipped.
    /usr/lib/userconf-pi/userconf "${EMOPI_USER:-pi}" '*'
  fi
fi

# 3. The install itself needs the network, which is not up this early: a unit does it later.
install -D -m 0644 "$BOOT/emopi/emopi-firstboot.service" \
  "$ROOT/etc/systemd/system/emopi-firstboot.service"
mkdir -p "$ROOT/etc/systemd/system/multi-user.target.wants"
ln -sf /etc/systemd/system/emopi-firstboot.service \
  "$ROOT/etc/systemd/system/multi-user.target.wants/emopi-firstboot.service"
log "emopi-firstboot.service enabled: emopi installs after the reboot"

# 4. Never again.
sed -i 's| systemd.run.*||g' "$BOOT/cmdline.txt"
exit 0
