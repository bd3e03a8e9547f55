"""deploy/install.sh for real: dry run, a prefix install of the real wheel, idempotence,
upgrade, uninstall, and the refusals (32-bit, bad input)."""

from __future__ import annotations

import os
import subprocess
import zipfile
from pathlib import Path

import pytest
from deploy_helpers import OFFLINE, run_install

STEPS = (
    "apt packages",
    "system user emopi",
    "venv",
    "emopi wheel",
    "config",
    "systemd unit",
    "service emopi.service",
    "emopi doctor",
)


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """(mtime_ns, size, mode) of every file and directory under root."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_mtime_ns, st.st_size, st.st_mode)
    return out


def install(prefix: Path, wheel: Path, os_release: Path, *extra: str):
    return run_install(
        "--prefix",
        str(prefix),
        "--wheel",
        str(wheel),
        *OFFLINE,
        *extra,
        env={"EMOPI_OS_RELEASE": str(os_release)},
    )


def version_of(prefix: Path) -> str:
    out = subprocess.run(
        [str(prefix / "opt/emopi/bin/emopi"), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def fresh_install(tmp: Path, wheel: Path) -> tuple[Path, Path, subprocess.CompletedProcess]:
    os_release = tmp / "os-release"
    os_release.write_text('PRETTY_NAME="Debian 12"\nID=debian\nVERSION_CODENAME=bookworm\n')
    config = tmp / "my.toml"
    config.write_text('device_id = "testpi"\n')
    prefix = tmp / "root"
    result = install(prefix, wheel, os_release, "--config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    return prefix, config, result


@pytest.fixture(scope="module")
def installed(tmp_path_factory, wheel) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """One offline prefix install of the real wheel, shared by the tests that only read it."""
    return fresh_install(tmp_path_factory.mktemp("installed"), wheel)


@pytest.fixture
def own_install(tmp_path, wheel) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """An install of its own for a test that changes it (any order, any -k selection)."""
    d = tmp_path / "own"
    d.mkdir()
    return fresh_install(d, wheel)


def test_dry_run_prints_every_step_and_changes_nothing(tmp_path, wheel, os_release):
    prefix = tmp_path / "root"
    result = run_install(
        "--dry-run",
        "--prefix",
        str(prefix),
        "--wheel",
        str(wheel),
        env={"EMOPI_OS_RELEASE": str(os_release)},
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for step in STEPS:
        assert f"==> {step}" in out
    assert "python3-picamera2" in out and "--no-install-recommends" in out
    assert "useradd --system" in out and "--groups video" in out
    assert "-m venv --system-site-packages" in out
    assert "numpy\\<2" in out  # the Bookworm constraint
    assert f"{wheel}\\[edge\\]" in out
    assert "systemctl enable emopi.service" in out and "restart --no-block" in out
    assert "dry run)" in out.splitlines()[-1]
    assert not prefix.exists()


def test_trixie_gets_no_numpy_constraint(tmp_path, wheel):
    trixie = tmp_path / "os-release"
    trixie.write_text('PRETTY_NAME="Debian 13"\nID=debian\nVERSION_CODENAME=trixie\n')
    result = run_install(
        "--dry-run",
        "--prefix",
        str(tmp_path / "root"),
        "--wheel",
        str(wheel),
        "--no-apt",
        env={"EMOPI_OS_RELEASE": str(trixie)},
    )
    assert result.returncode == 0, result.stderr
    assert "numpy\\<2" not in result.stdout and "emopi-constraints" not in result.stdout
    assert "--constraint" not in result.stdout


def test_prefix_install_runs_the_real_wheel(installed, wheel):
    prefix, config, result = installed
    assert "-m venv --system-site-packages" in result.stdout
    version = wheel.name.split("-")[1]
    assert version_of(prefix) == f"emopi {version}"
    cfg = (prefix / "opt/emopi/pyvenv.cfg").read_text()
    assert "include-system-site-packages = true" in cfg  # apt's picamera2 is importable
    assert (prefix / "opt/emopi/emopi-constraints.txt").read_text().strip() == "numpy<2"
    assert (prefix / "etc/emopi/emopi.toml").read_text() == config.read_text()
    assert oct((prefix / "etc/emopi/emopi.toml").stat().st_mode & 0o777) == "0o640"
    unit = (prefix / "etc/systemd/system/emopi.service").read_text()
    assert f"ExecStart={prefix}/opt/emopi/bin/emopi run --config {prefix}/etc/emopi/emopi.toml" in (
        unit
    )
    assert (prefix / "etc/systemd/system/emopi.service.d/10-backoff.conf").is_file()


def test_second_run_changes_nothing(installed, wheel):
    prefix, config, _ = installed
    before = snapshot(prefix)
    os_release = config.parent / "os-release"
    again = install(prefix, wheel, os_release, "--config", str(config))
    assert again.returncode == 0, again.stderr
    assert "done (0 changes)" in again.stdout
    assert "= this wheel is installed" in again.stdout
    assert snapshot(prefix) == before


def test_existing_config_is_never_overwritten(own_install, wheel, tmp_path):
    prefix, config, _ = own_install
    conf = prefix / "etc/emopi/emopi.toml"
    edited = conf.read_text() + "# edited on the Pi\n"
    conf.write_text(edited)
    other = tmp_path / "other.toml"
    other.write_text('device_id = "other"\n')
    result = install(prefix, wheel, config.parent / "os-release", "--config", str(other))
    assert result.returncode == 0, result.stderr
    assert conf.read_text() == edited
    assert (prefix / "etc/emopi/emopi.toml.new").read_text() == other.read_text()
    assert "kept the existing config" in result.stdout
    # Without --config the template is not even considered: the edited file stays.
    result = install(prefix, wheel, config.parent / "os-release")
    assert result.returncode == 0 and conf.read_text() == edited


def test_force_config_replaces_and_keeps_a_backup(own_install, wheel, tmp_path):
    prefix, config, _ = own_install
    conf = prefix / "etc/emopi/emopi.toml"
    old = conf.read_text()
    new = tmp_path / "new.toml"
    new.write_text('device_id = "forced"\n')
    os_release = config.parent / "os-release"
    result = install(prefix, wheel, os_release, "--config", str(new), "--force-config")
    assert result.returncode == 0, result.stderr
    assert conf.read_text() == new.read_text()
    assert (prefix / "etc/emopi/emopi.toml.bak").read_text() == old


def test_new_build_of_the_same_version_is_reinstalled(own_install, wheel, tmp_path):
    prefix, config, _ = own_install
    rebuilt = tmp_path / wheel.name  # same version, other bytes: a re-deploy of a work tree
    rebuilt.write_bytes(wheel.read_bytes())
    with zipfile.ZipFile(rebuilt, "a") as zf:
        zf.comment = b"rebuilt"
    result = install(prefix, rebuilt, config.parent / "os-release")
    assert result.returncode == 0, result.stderr
    assert "--force-reinstall" in result.stdout and "done (0 changes)" not in result.stdout
    assert version_of(prefix).startswith("emopi ")


def test_model_is_installed_with_a_drop_in(own_install, wheel, tmp_path):
    prefix, config, _ = own_install
    model = tmp_path / "mine.tflite"
    model.write_bytes(b"TFL3 not a real model: install.sh only copies it")
    model.with_suffix(".json").write_text("{}")
    result = install(prefix, wheel, config.parent / "os-release", "--model", str(model))
    assert result.returncode == 0, result.stderr
    assert (prefix / "etc/emopi/models/mine.tflite").read_bytes() == model.read_bytes()
    assert (prefix / "etc/emopi/models/mine.json").is_file()
    dropin = (prefix / "etc/systemd/system/emopi.service.d/20-model.conf").read_text()
    assert f"EMOPI_CLASSIFY_MODEL={prefix}/etc/emopi/models/mine.tflite" in dropin


@pytest.mark.parametrize("arch", ["armhf", "armv7l", "armel"])
def test_32_bit_is_refused_with_one_clear_line(tmp_path, wheel, os_release, arch):
    prefix = tmp_path / "root"
    result = run_install(
        "--prefix",
        str(prefix),
        "--wheel",
        str(wheel),
        *OFFLINE,
        env={"EMOPI_OS_RELEASE": str(os_release), "EMOPI_ARCH": arch},
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "32-bit" in lines[0] and "64-bit" in lines[0] and "aarch64" in lines[0]
    assert not prefix.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--wheel", "/nonexistent/emopi-1-py3-none-any.whl"], "does not exist"),
        (["--bogus"], "unknown option --bogus"),
        (["--config", "/nonexistent.toml"], "config /nonexistent.toml does not exist"),
        (["--model", "/etc/hostname"], "is not a .tflite file"),
        (["--find-links", "/nonexistent-wheels"], "is not a directory"),
        (["--wheel"], "--wheel needs a value"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(tmp_path, os_release, args, message):
    prefix = tmp_path / "root"
    result = run_install(
        "--prefix", str(prefix), *OFFLINE, *args, env={"EMOPI_OS_RELEASE": str(os_release)}
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert not prefix.exists()


def test_uninstall_keeps_config_and_state(own_install, wheel, tmp_path):
    prefix, installed_config, _ = own_install
    model = tmp_path / "mine.tflite"
    model.write_bytes(b"TFL3 not a real model: install.sh only copies it")
    model.with_suffix(".json").write_text("{}")
    os_release = installed_config.parent / "os-release"
    assert install(prefix, wheel, os_release, "--model", str(model)).returncode == 0
    config = (prefix / "etc/emopi/emopi.toml").read_text()
    spool = prefix / "var/lib/emopi/spool.db"
    spool.parent.mkdir(parents=True)
    spool.write_bytes(b"events")
    result = run_install(
        "--uninstall", "--prefix", str(prefix), "--no-user", "--no-systemctl", "--no-apt"
    )
    assert result.returncode == 0, result.stderr
    assert not (prefix / "opt/emopi").exists()
    assert not (prefix / "etc/systemd/system/emopi.service").exists()
    assert not (prefix / "etc/systemd/system/emopi.service.d").exists()  # ours were the only
    assert (prefix / "etc/emopi/emopi.toml").read_text() == config
    assert (prefix / "etc/emopi/models/mine.tflite").is_file()
    assert spool.read_bytes() == b"events"
    again = run_install("--uninstall", "--prefix", str(prefix), "--no-user", "--no-systemctl")
    assert again.returncode == 0 and "(0 changes)" in again.stdout
