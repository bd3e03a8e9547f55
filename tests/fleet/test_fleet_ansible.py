"""The Ansible role against two real SSH hosts on loopback (one sshd and one root directory
each): install, `--check`, a rollout that stops at the first unhealthy host, and an upgrade of
both. The devices run the real `emopi run` from the installed wheel (demo source) and publish
to a real site broker bridged to a central one; the MQTT password comes from Ansible Vault.

The hosts have no systemd: `fakebin/systemctl` runs the installed unit's ExecStart= (with its
Environment= and LoadCredential=) as a background process, and `EMOPI_ASSUME_SYSTEMD=1` lets
install.sh use it."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from deploy_helpers import Sshd, running_sshd
from fleetkit import DEVICE_USER, PASSWORD, SITE, Fleet, read_retained, start_fleet

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = ROOT / "deploy" / "ansible"
FAKEBIN = Path(__file__).with_name("fakebin")
PLAYBOOK = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent))
VAULT = shutil.which("ansible-vault", path=str(Path(sys.executable).parent))
INSTALL_ARGS = ["--no-apt", "--no-user", "--no-index", "--no-deps", "--no-doctor"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(2400),  # a guard: four plays take about 2 min on 2 free cores
    pytest.mark.skipif(PLAYBOOK is None, reason="ansible-core is not installed (dev extra)"),
]


@dataclass
class Host:
    name: str
    sshd: Sshd
    root: Path  # the host's own root directory (install.sh --prefix)

    @property
    def environment(self) -> dict[str, str]:
        """What the role runs install.sh and the checks with on this test host."""
        return {
            "PATH": f"{FAKEBIN}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "EMOPI_FAKE_ROOT": str(self.root),
            "EMOPI_ASSUME_SYSTEMD": "1",
            # The wheel goes in with --no-deps (offline); its dependencies come from here.
            "PYTHONPATH": sysconfig.get_paths()["purelib"],
        }

    def stamp(self) -> str:
        """sha256 of the wheel install.sh last installed."""
        return (self.root / "opt/emopi/.emopi-wheel.sha256").read_text().strip()

    def starts(self) -> list[str]:
        path = self.root / "run/fake-systemd/starts"
        return path.read_text().split() if path.exists() else []

    def stop(self) -> None:
        subprocess.run([str(FAKEBIN / "systemctl"), "stop", "emopi"], env=self.environment)


@dataclass
class Rollout:
    hosts: list[Host]
    fleet: Fleet
    inventory: Path
    vault_pass: Path
    tmp: Path

    def set_password(self, host: Host, password: str) -> None:
        """Write the host's vault file, encrypted with ansible-vault."""
        vault = self.inventory / "host_vars" / host.name / "vault.yml"
        vault.parent.mkdir(parents=True, exist_ok=True)
        vault.write_text(f"vault_emopi_mqtt_password: {password}\n")
        subprocess.run(
            [VAULT, "encrypt", "--vault-password-file", str(self.vault_pass), str(vault)],
            check=True,
            capture_output=True,
        )

    def play(self, wheel: Path, *args: str) -> subprocess.CompletedProcess:
        env = {
            **os.environ,
            "SSH_AUTH_SOCK": "",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOCAL_TEMP": str(self.tmp / "ansible-local"),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.tmp / "ansible-cp"),
        }
        result = subprocess.run(
            [
                str(PLAYBOOK),
                "-i",
                str(self.inventory / "hosts.yml"),
                "playbook.yml",
                "--vault-password-file",
                str(self.vault_pass),
                "-e",
                f"emopi_wheel={wheel}",
                *args,
            ],
            cwd=ANSIBLE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,  # a guard only: a play takes well under a minute on 2 free cores
        )
        with (self.tmp / "ansible.log").open("a") as log:  # for a failing test's reader
            log.write(f"{time.time():.0f} $ ansible-playbook {' '.join(args)}\n")
            log.write(f"{result.stdout}{result.stderr}\n")
        return result

    def status(self, host: Host) -> bytes | None:
        """The retained status of the device, read on the central broker (over the bridge)."""
        return read_retained(self.fleet.central.port, f"emopi/{SITE}/{host.name}/status")


def write_inventory(directory: Path, hosts: list[Host], broker_port: int) -> None:
    entries = {}
    for host in hosts:
        entries[host.name] = {
            "ansible_host": "127.0.0.1",
            "ansible_port": host.sshd.port,
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(host.sshd.client_key),
            "ansible_ssh_common_args": (
                f"-o UserKnownHostsFile={host.sshd.known_hosts} -o StrictHostKeyChecking=yes "
                "-o IdentitiesOnly=yes"
            ),
            "ansible_python_interpreter": "/usr/bin/python3",
            "emopi_prefix": str(host.root),
            "emopi_state_dir": str(host.root / "var/lib/emopi"),
            "emopi_environment": host.environment,
        }
    group_vars = {
        "emopi_site": SITE,
        "emopi_mqtt_host": "127.0.0.1",
        "emopi_mqtt_port": broker_port,
        "emopi_mqtt_username": DEVICE_USER,
        "emopi_mqtt_password": "{{ vault_emopi_mqtt_password }}",
        "emopi_config_extra": '[source]\nspec = "demo"\nfps = 4\n',
        "emopi_install_args": INSTALL_ARGS,
        "emopi_health_retries": 3,
        "emopi_health_delay": 1,
        "emopi_health_timeout": 15,
    }
    inventory = {"all": {"children": {"emopi": {"hosts": entries, "vars": group_vars}}}}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "hosts.yml").write_text(json.dumps(inventory, indent=1))  # JSON is YAML


@pytest.fixture
def rollout(tmp_path: Path) -> Iterator[Rollout]:
    with ExitStack() as stack:
        fleet = start_fleet(tmp_path / "brokers")
        stack.callback(fleet.stop)
        hosts = []
        for n in (1, 2):
            sshd = stack.enter_context(running_sshd(tmp_path / f"sshd-{n}"))
            hosts.append(Host(f"pi-{n}", sshd, tmp_path / f"root-{n}"))
            stack.callback(hosts[-1].stop)
        vault_pass = tmp_path / "vault-pass"
        vault_pass.write_text("test vault password\n")
        r = Rollout(hosts, fleet, tmp_path / "inventory", vault_pass, tmp_path)
        write_inventory(r.inventory, hosts, fleet.site.port)
        for host in hosts:
            r.set_password(host, PASSWORD)
        yield r


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def other_build(wheel: Path, tmp: Path) -> Path:
    """The same wheel with a zip comment: another build of the same version (an upgrade)."""
    rebuilt = tmp / "v2" / wheel.name
    rebuilt.parent.mkdir()
    shutil.copy(wheel, rebuilt)
    with zipfile.ZipFile(rebuilt, "a") as whl:
        whl.comment = b"another build"
    return rebuilt


def failed(result: subprocess.CompletedProcess) -> str:
    return f"rc={result.returncode}\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"


def test_playbook_installs_checks_stops_on_failure_and_upgrades(rollout, wheel, tmp_path):
    pi1, pi2 = rollout.hosts
    first = rollout.play(wheel)
    assert first.returncode == 0, failed(first)
    for host in (pi1, pi2):
        assert host.stamp() == sha256(wheel)
        assert rollout.status(host) == b"online"  # connected with the vault's password
        password_file = host.root / "etc/emopi/mqtt.pass"
        assert password_file.stat().st_mode & 0o777 == 0o600
        config = (host.root / "etc/emopi/emopi.toml").read_text()
        assert f'device_id = "{host.name}"' in config and PASSWORD not in config
        assert re.search(rf"^{host.name} +: ok=\d+ .* failed=0 ", first.stdout, re.M)
    assert PASSWORD not in first.stdout
    assert "is online on 127.0.0.1" in first.stdout  # the health check ran for each host
    # One host per batch: pi-1's health check finished before anything ran on pi-2.
    assert first.stdout.index("pi-1: emopi/hall/pi-1/status is online") < first.stdout.index(
        "ok: [pi-2]"
    )

    # --check with a new build: the wheel copy shows as a change, nothing on the host changes.
    v2 = other_build(wheel, tmp_path)
    starts = {host.name: host.starts() for host in (pi1, pi2)}
    check = rollout.play(v2, "--check", "--diff", "--limit", "pi-1")
    assert check.returncode == 0, failed(check)
    stage = check.stdout.split("TASK [emopi : Stage the wheel]")[1].split("TASK [")[0]
    assert stage.strip().endswith("changed: [pi-1]"), failed(check)  # after "diff skipped"
    assert pi1.stamp() == sha256(wheel) and pi1.starts() == starts["pi-1"]

    # pi-1 gets a wrong password: its health check fails and pi-2 is never touched.
    rollout.set_password(pi1, "wrong-password")
    broken = rollout.play(v2)
    assert broken.returncode != 0, failed(broken)
    assert "fatal: [pi-1]" in broken.stdout
    assert pi1.stamp() == sha256(v2)
    assert pi2.stamp() == sha256(wheel) and pi2.starts() == starts["pi-2"]
    assert "pi-2" not in broken.stdout.split("PLAY RECAP")[0]

    # Fixed: the rollout upgrades both, each restarted and online again.
    rollout.set_password(pi1, PASSWORD)
    fixed = rollout.play(v2)
    assert fixed.returncode == 0, failed(fixed)
    for host in (pi1, pi2):
        assert host.stamp() == sha256(v2)
        assert len(host.starts()) > len(starts[host.name])
        assert rollout.status(host) == b"online"
