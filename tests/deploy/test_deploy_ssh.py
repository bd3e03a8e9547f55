"""`emopi deploy` against a real OpenSSH server on loopback: install into a temporary prefix,
upgrade in place, and one clear line for every way the connection or the install can fail."""

from __future__ import annotations

import re
import shutil
import subprocess
import zipfile
from pathlib import Path

from helpers import free_port, run_cli

# The install on the "Pi" (this machine, as root over ssh) stays inside the prefix and offline.
REMOTE_OFFLINE = [
    "--no-systemctl",
    "--install-arg=--no-apt",
    "--install-arg=--no-user",
    "--install-arg=--no-index",
    "--install-arg=--no-deps",
    "--install-arg=--no-doctor",
]


def deploy(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return run_cli("deploy", *args, timeout=timeout, env={"SSH_AUTH_SOCK": ""})  # only our key


def emopi_version(prefix: Path) -> str:
    out = subprocess.run(
        [str(prefix / "opt/emopi/bin/emopi"), "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def remote_dir(output: str) -> Path:
    match = re.search(r"payload -> (\S+)", output)
    assert match, output
    return Path(match.group(1))


def test_deploy_builds_copies_installs_and_upgrades(sshd, tmp_path, config_file, wheel):
    prefix = tmp_path / "pi"
    target = "root@127.0.0.1"
    first = deploy(
        target,
        *sshd.ssh_options,
        "--prefix",
        str(prefix),
        "--config",
        str(config_file),
        *REMOTE_OFFLINE,
    )
    assert first.returncode == 0, first.stdout + first.stderr
    assert "== building from" in first.stdout and f"deployed to {target}" in first.stdout
    assert emopi_version(prefix).startswith("emopi ")
    assert (prefix / "etc/emopi/emopi.toml").read_text() == config_file.read_text()
    assert (prefix / "etc/systemd/system/emopi.service").is_file()
    assert not remote_dir(first.stdout).exists()  # the payload is cleaned up on the Pi

    # Re-running upgrades in place: another build replaces emopi, the config stays. Two
    # builds of one tree within the same 2 s zip timestamp are byte-identical, so the other
    # build is made certain: the same wheel with a zip comment (a different sha256).
    (prefix / "etc/emopi/emopi.toml").write_text('device_id = "edited-on-the-pi"\n')
    rebuilt = tmp_path / "rebuilt" / wheel.name
    rebuilt.parent.mkdir()
    shutil.copy(wheel, rebuilt)
    with zipfile.ZipFile(rebuilt, "a") as whl:
        whl.comment = b"another build"
    again = deploy(
        target,
        *sshd.ssh_options,
        "--prefix",
        str(prefix),
        "--wheel",
        str(rebuilt),
        "--config",
        str(config_file),
        *REMOTE_OFFLINE,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "--force-reinstall" in again.stdout  # a different build: emopi itself replaced
    assert "= venv exists" in again.stdout
    assert "kept the existing config" in again.stdout
    assert (prefix / "etc/emopi/emopi.toml").read_text() == 'device_id = "edited-on-the-pi"\n'
    assert emopi_version(prefix) == f"emopi {wheel.name.split('-')[1]}"

    gone = deploy(
        target, *sshd.ssh_options, "--uninstall", "--prefix", str(prefix), "--no-systemctl"
    )
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert "uninstalled from root@127.0.0.1" in gone.stdout and "== building" not in gone.stdout
    assert not (prefix / "opt/emopi").exists()
    assert (prefix / "etc/emopi/emopi.toml").read_text() == 'device_id = "edited-on-the-pi"\n'


def test_unreachable_host_is_one_clear_line(tmp_path, wheel):
    port = free_port()  # nothing listens there
    result = deploy("root@127.0.0.1", "--port", str(port), "--wheel", str(wheel))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"emopi deploy: error: cannot reach root@127.0.0.1:{port}: "
        "connection refused (is SSH enabled on the Pi?)"
    )


def test_unknown_host_name_is_one_clear_line(wheel):
    result = deploy("pi@emopi-no-such-host.invalid", "--wheel", str(wheel))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach pi@emopi-no-such-host.invalid" in lines[0]


def test_authentication_failure_is_one_clear_line(sshd, tmp_path, wheel):
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    opts = list(sshd.ssh_options)
    opts[opts.index("--identity") + 1] = str(stranger)
    result = deploy("root@127.0.0.1", *opts, "--wheel", str(wheel))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "SSH login to root@127.0.0.1" in lines[0] and "authentication refused" in lines[0]
    assert "ssh-copy-id root@127.0.0.1" in lines[0]


def test_changed_host_key_is_refused(sshd, tmp_path, wheel):
    other = tmp_path / "other_host"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    kind, key = other.with_suffix(".pub").read_text().split()[:2]
    sshd.known_hosts.write_text(f"[127.0.0.1]:{sshd.port} {kind} {key}\n")
    result = deploy("root@127.0.0.1", *sshd.ssh_options, "--wheel", str(wheel))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not match known_hosts" in lines[0], result.stderr


def test_failed_remote_install_is_one_line_and_cleans_up(sshd, tmp_path, wheel):
    result = deploy(
        "root@127.0.0.1",
        *sshd.ssh_options,
        "--wheel",
        str(wheel),
        "--prefix",
        str(tmp_path / "pi"),
        "--install-arg=--bogus",
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "emopi deploy: error: install on root@127.0.0.1 failed: "
        "install.sh: error: unknown option --bogus (see --help)"
    )
    assert not remote_dir(result.stdout).exists()
    assert not (tmp_path / "pi").exists()


def test_bad_local_input_fails_before_connecting(tmp_path, wheel):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"x")
    for args, message in (
        (["--config", str(tmp_path / "missing.toml")], "does not exist"),
        (["--model", str(model)], "has no metadata sidecar m.json"),
        (["--wheel", str(tmp_path / "missing.whl")], "does not exist"),
        ([], "give a target"),
    ):
        target = [] if not args else ["pi@emopi-no-such-host.invalid"]
        extra = [] if "--wheel" in args else ["--wheel", str(wheel)]
        result = deploy(*target, *extra, *args)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr
        assert "cannot reach" not in result.stderr
