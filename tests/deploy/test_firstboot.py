"""First boot from a flashed SD card: `emopi deploy --stage` onto a boot partition (Bookworm
with and without Raspberry Pi Imager's customisation, Trixie with cloud-init), then the real
first-run hook and first-boot install scripts against a fake boot partition and root."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_helpers import OFFLINE, ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

FIRSTBOOT = ROOT / "deploy" / "firstboot"
IMAGER_CMDLINE = (
    "console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 fsck.repair=yes"
    " rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot"
    " systemd.run=/boot/firmware/firstrun.sh systemd.run_success_action=reboot"
    " systemd.unit=kernel-command-line.target\n"
)
PLAIN_CMDLINE = "console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 rootwait quiet\n"
HOOK = "systemd.run=/boot/firmware/emopi/emopi-firstrun.sh"
RUNCMD_ITEM = ["bash", "/boot/firmware/emopi/emopi-firstboot.sh"]


def stage(boot: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "emopi.edge.cli", "deploy", "--stage", str(boot), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def boot(tmp_path: Path) -> Path:
    d = tmp_path / "bootfs"
    d.mkdir()
    return d


def test_stage_copies_one_wheel_and_the_first_boot_scripts(boot, wheel, config_file):
    (boot / "emopi").mkdir()
    (boot / "emopi" / "emopi-0.0.1-py3-none-any.whl").write_bytes(b"stale")
    (boot / "emopi" / "install-args.done").write_text("old\n")
    result = stage(boot, "--wheel", str(wheel), "--config", str(config_file))
    assert result.returncode == 0, result.stderr
    staged = boot / "emopi"
    assert sorted(p.name for p in staged.glob("emopi-*.whl")) == [wheel.name]
    for name in ("install.sh", "emopi.service", "backoff-fixed.conf", "backoff-steps.conf"):
        assert (staged / name).is_file(), name
    for name in ("emopi-firstboot.sh", "emopi-firstboot.service", "emopi-firstrun.sh"):
        assert (staged / name).read_bytes() == (FIRSTBOOT / name).read_bytes()
    assert (staged / "install-args").read_text().split() == [
        "--wheel",
        wheel.name,
        "--config",
        "emopi.toml",
    ]
    assert not (staged / "install-args.done").exists()  # a re-stage installs again
    assert (staged / "emopi.toml").read_text() == config_file.read_text()


def test_bookworm_imager_card_chains_imager_firstrun(boot, wheel):
    (boot / "cmdline.txt").write_text(IMAGER_CMDLINE)
    (boot / "firstrun.sh").write_text("#!/bin/sh\n")
    for _ in range(2):  # staging twice changes nothing more
        result = stage(boot, "--wheel", str(wheel))
        assert result.returncode == 0, result.stderr
    line = (boot / "cmdline.txt").read_text()
    assert line.count("\n") == 1 and line.count("systemd.run=") == 1
    assert HOOK in line and "firstrun.sh " not in line.replace("emopi-firstrun.sh", "")
    assert line.count("systemd.run_success_action=reboot") == 1
    assert line.startswith("console=serial0,115200") and "rootwait" in line


def test_bookworm_card_without_customisation_gets_the_hook(boot, wheel):
    (boot / "cmdline.txt").write_text(PLAIN_CMDLINE)
    result = stage(boot, "--wheel", str(wheel))
    assert result.returncode == 0, result.stderr
    tokens = (boot / "cmdline.txt").read_text().split()
    assert tokens[: len(PLAIN_CMDLINE.split())] == PLAIN_CMDLINE.split()
    assert HOOK in tokens and "systemd.unit=kernel-command-line.target" in tokens


def test_a_foreign_first_run_script_is_not_replaced(boot, wheel):
    original = PLAIN_CMDLINE.strip() + " systemd.run=/boot/firmware/mine.sh\n"
    (boot / "cmdline.txt").write_text(original)
    result = stage(boot, "--wheel", str(wheel))
    assert result.returncode == 2
    assert "already runs systemd.run=/boot/firmware/mine.sh" in result.stderr
    assert (boot / "cmdline.txt").read_text() == original


@pytest.mark.parametrize(
    "user_data",
    [
        "#cloud-config\nhostname: kiosk\nenable_ssh: true\n",
        "#cloud-config\nhostname: kiosk\nruncmd:\n  - [ rfkill, unblock, wifi ]\ntimezone: UTC\n",
        "#cloud-config\nruncmd:\n- [ rfkill, unblock, wifi ]\n",
    ],
    ids=["no-runcmd", "runcmd-indented", "runcmd-flush"],
)
def test_trixie_card_gets_a_runcmd_and_keeps_the_rest(boot, wheel, user_data):
    yaml = pytest.importorskip("yaml")
    (boot / "user-data").write_text(user_data)
    (boot / "cmdline.txt").write_text(PLAIN_CMDLINE)
    for _ in range(2):
        result = stage(boot, "--wheel", str(wheel))
        assert result.returncode == 0, result.stderr
    before, after = yaml.safe_load(user_data), yaml.safe_load((boot / "user-data").read_text())
    assert after["runcmd"].count(RUNCMD_ITEM) == 1
    assert [c for c in after["runcmd"] if c != RUNCMD_ITEM] == before.get("runcmd", [])
    assert {k: v for k, v in after.items() if k != "runcmd"} == {
        k: v for k, v in before.items() if k != "runcmd"
    }
    assert (boot / "cmdline.txt").read_text() == PLAIN_CMDLINE  # cloud-init needs no hook


def test_templates_are_valid_and_run_the_install():
    yaml = pytest.importorskip("yaml")
    user_data = (FIRSTBOOT / "user-data").read_text()
    assert user_data.startswith("#cloud-config\n")
    doc = yaml.safe_load(user_data)
    assert RUNCMD_ITEM in doc["runcmd"]
    assert doc["users"][0]["ssh_authorized_keys"] and doc["ssh_pwauth"] is False
    (config,) = [f for f in doc["write_files"] if f["path"] == "/etc/emopi/emopi.toml"]
    toml = tomllib.loads(config["content"])
    assert toml["mqtt"]["host"] and toml["mqtt"]["port"] == 1883
    net = yaml.safe_load((FIRSTBOOT / "network-config").read_text())["network"]
    assert net["version"] == 2 and net["wifis"]["wlan0"]["access-points"]


def test_firstrun_hook_chains_imager_enables_the_unit_and_clears_cmdline(tmp_path):
    boot, root = tmp_path / "bootfs", tmp_path / "root"
    (boot / "emopi").mkdir(parents=True)
    (boot / "emopi" / "emopi-firstboot.service").write_bytes(
        (FIRSTBOOT / "emopi-firstboot.service").read_bytes()
    )
    (boot / "cmdline.txt").write_text(PLAIN_CMDLINE.strip() + f" {HOOK} x=1\n")
    # A stand-in for Imager's firstrun.sh: leaves a mark, deletes itself like the real one.
    (boot / "firstrun.sh").write_text(f'touch "{tmp_path}/imager-ran"\nrm -f "$0"\n')
    result = subprocess.run(
        ["bash", str(FIRSTBOOT / "emopi-firstrun.sh")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "EMOPI_BOOT": str(boot), "EMOPI_ROOT": str(root)},
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "imager-ran").exists() and not (boot / "firstrun.sh").exists()
    unit = root / "etc/systemd/system/emopi-firstboot.service"
    assert unit.read_text() == (FIRSTBOOT / "emopi-firstboot.service").read_text()
    link = root / "etc/systemd/system/multi-user.target.wants/emopi-firstboot.service"
    assert os.readlink(link) == "/etc/systemd/system/emopi-firstboot.service"
    assert (boot / "cmdline.txt").read_text() == PLAIN_CMDLINE


def run_firstboot(boot: Path, prefix: Path, log: Path, os_release: Path, arch: str = "amd64"):
    return subprocess.run(
        ["bash", str(boot / "emopi" / "emopi-firstboot.sh")],
        capture_output=True,
        text=True,
        timeout=180,
        env={
            **os.environ,
            "EMOPI_BOOT": str(boot),
            "EMOPI_FIRSTBOOT_ARGS": " ".join(["--prefix", str(prefix), *OFFLINE]),
            "EMOPI_FIRSTBOOT_LOG": str(log),
            "EMOPI_OS_RELEASE": str(os_release),
            "EMOPI_ARCH": arch,
        },
    )


def test_first_boot_installs_the_staged_payload_once(
    boot, tmp_path, wheel, config_file, os_release
):
    assert stage(boot, "--wheel", str(wheel), "--config", str(config_file)).returncode == 0
    prefix, log = tmp_path / "pi", tmp_path / "firstboot.log"

    failed = run_firstboot(boot, prefix, log, os_release, arch="armhf")  # a 32-bit card
    assert failed.returncode == 1 and "32-bit" in log.read_text()
    assert (boot / "emopi" / "install-args").exists()  # tried again at the next boot

    done = run_firstboot(boot, prefix, log, os_release)
    assert done.returncode == 0, done.stdout + done.stderr
    version = subprocess.run(
        [str(prefix / "opt/emopi/bin/emopi"), "--version"], capture_output=True, text=True
    )
    assert version.stdout.strip() == f"emopi {wheel.name.split('-')[1]}"
    assert (prefix / "etc/emopi/emopi.toml").read_text() == config_file.read_text()
    assert not (boot / "emopi" / "install-args").exists()
    assert (boot / "emopi" / "install-args.done").exists()

    again = run_firstboot(boot, prefix, log, os_release)
    assert again.returncode == 0 and "already done" in again.stdout


@pytest.mark.skipif(shutil.which("cloud-init") is None, reason="cloud-init is not installed")
def test_templates_pass_cloud_init_own_checks(tmp_path):
    schema = subprocess.run(
        ["cloud-init", "schema", "--config-file", str(FIRSTBOOT / "user-data")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert schema.returncode == 0 and "Valid cloud-config" in schema.stdout, schema.stderr
    convert = ["devel", "net-convert", "-p", str(FIRSTBOOT / "network-config"), "-k", "yaml"]
    net = subprocess.run(
        ["cloud-init", *convert, "-d", str(tmp_path), "-D", "debian", "-O", "netplan"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert net.returncode == 0, net.stderr
    rendered = next(tmp_path.rglob("*.yaml")).read_text()
    assert "wlan0" in rendered and "CHANGE_ME_SSID" in rendered
