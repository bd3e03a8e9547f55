"""`emopi deploy`: build emopi and install it as a service on a Raspberry Pi over SSH.

    emopi deploy pi@emopi.local [--config my.toml] [--model my.tflite]

Steps: build the wheel from this checkout, copy wheel + ``deploy/install.sh`` + the systemd unit
(+ config, model) to a temporary directory on the Pi, run the installer there with sudo, then
report the service status and the first ``<prefix>/stats`` message. Running it again upgrades in
place: the installer replaces the wheel and restarts the service, and keeps the config.

``--stage DIR`` writes the same payload into a directory instead, e.g. the boot partition of a
freshly flashed SD card, where ``deploy/firstboot`` picks it up on the first boot.

SSH goes through the system ``ssh``/``scp`` binaries rather than paramiko/fabric: no extra
dependency, and ``~/.ssh/config``, agents, ProxyJump and known_hosts work as in a terminal. One
multiplexed master connection (ControlMaster) carries every step, so a password or passphrase
is asked at most once.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from emopi.edge.config import load_config
from emopi.edge.errors import EmopiError
from emopi.edge.model_files import metadata_path
from emopi.tools.ssh import SSH_TIMEOUT_S, Ssh, classify_ssh_error

#: Files of a checkout that make up the payload besides the wheel (relative to the checkout).
PAYLOAD_FILES = (
    "deploy/install.sh",
    "systemd/emopi.service",
    "systemd/backoff-steps.conf",
    "systemd/backoff-fixed.conf",
)
FIRSTBOOT_FILES = (
    "deploy/firstboot/emopi-firstboot.sh",
    "deploy/firstboot/emopi-firstboot.service",
    "deploy/firstboot/emopi-firstrun.sh",
)
#: Where the payload is on a running Pi (Bookworm and Trixie mount the boot partition there).
PI_PAYLOAD = "/boot/firmware/emopi"
SYSTEMD_RUN = (
    f"systemd.run={PI_PAYLOAD}/emopi-firstrun.sh systemd.run_success_action=reboot "
    "systemd.unit=kernel-command-line.target"
)
RUNCMD = f"[bash, {PI_PAYLOAD}/emopi-firstboot.sh]"
REMOTE_VENV = "/opt/emopi"


# ---------------------------------------------------------------------------- local side
def find_checkout(explicit: str | None) -> Path:
    """The source tree to build from: ``--source``, this package's checkout, or the cwd."""
    candidates = [Path(explicit)] if explicit else [Path(__file__).resolve().parents[1], Path.cwd()]
    for root in candidates:
        if (root / "pyproject.toml").is_file() and (root / "deploy" / "install.sh").is_file():
            return root
    where = explicit or f"{candidates[0]} or {candidates[1]}"
    raise EmopiError(f"no emopi checkout at {where}: run from the source tree or pass --source")


def build_wheel(checkout: Path, out: Path) -> Path:
    """``pip wheel`` without build isolation: offline, with this environment's setuptools."""
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    proc = subprocess.run([*cmd, "-w", str(out), str(checkout)], capture_output=True, text=True)
    wheels = sorted(out.glob("emopi-*.whl"))
    if proc.returncode != 0 or not wheels:
        last = (proc.stderr.strip().splitlines() or ["no wheel produced"])[-1]
        raise EmopiError(f"building the wheel from {checkout} failed: {last}")
    return wheels[-1]


@dataclass
class Payload:
    """What goes to the Pi, as local files, and the installer flags that refer to them."""

    files: list[Path]
    install_args: list[str] = field(default_factory=list)


def _target_args(args: argparse.Namespace) -> list[str]:
    """Installer flags about where and how to install, common to install and uninstall."""
    out = ["--prefix", args.prefix] if args.prefix else []
    if args.no_systemctl:
        out.append("--no-systemctl")
    return [*out, *args.install_arg]


def uninstall_payload(args: argparse.Namespace, checkout: Path) -> Payload:
    """Only the installer, run with --uninstall (keeps the config and the state)."""
    return Payload([checkout / "deploy/install.sh"], ["--uninstall", *_target_args(args)])


def make_payload(args: argparse.Namespace, checkout: Path, workdir: Path) -> Payload:
    if args.uninstall:
        return uninstall_payload(args, checkout)
    wheel = Path(args.wheel) if args.wheel else build_wheel(checkout, workdir)
    if not wheel.is_file():
        raise EmopiError(f"wheel {wheel} does not exist")
    files = [wheel, *(checkout / name for name in PAYLOAD_FILES)]
    install_args = ["--wheel", wheel.name]
    if args.config:
        config = Path(args.config)
        if not config.is_file():
            raise EmopiError(f"config {config} does not exist")
        load_config(config, env={})  # a typo fails here, before anything is copied
        staged = workdir / "emopi.toml"
        shutil.copyfile(config, staged)
        files.append(staged)
        install_args += ["--config", "emopi.toml"]
        if args.force_config:
            install_args.append("--force-config")
    if args.model:
        model = Path(args.model)
        if model.suffix != ".tflite" or not model.is_file():
            raise EmopiError(f"model {model} is not an existing .tflite file")
        if not metadata_path(model).is_file():
            raise EmopiError(f"model {model} has no metadata sidecar {metadata_path(model).name}")
        files += [model, metadata_path(model)]
        install_args += ["--model", model.name]
    if args.wheelhouse:
        house = Path(args.wheelhouse)
        if not house.is_dir():
            raise EmopiError(f"wheelhouse {house} is not a directory")
        files.append(house)
        install_args += ["--find-links", house.name]
    return Payload(files, [*install_args, *_target_args(args)])


# ---------------------------------------------------------------------------- remote side
PROBE = (
    'd=$(mktemp -d /tmp/emopi-deploy.XXXXXX) && echo "dir=$d" && echo "uid=$(id -u)"'
    ' && echo "arch=$(uname -m)" && (. /etc/os-release 2>/dev/null; echo "os=${PRETTY_NAME:-?}")'
)


def _probe(ssh: Ssh) -> dict[str, str]:
    out = ssh.run(PROBE)
    info = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    if "dir" not in info:
        raise EmopiError(f"unexpected answer from {ssh.target}: {out.strip()[:200]!r}")
    return info


def sudo_prefix(info: dict[str, str], interactive: bool) -> str:
    """Nothing as root; else sudo, which may prompt only when a person is at the terminal."""
    if info.get("uid") == "0":
        return ""
    return "sudo " if interactive else "sudo -n "


def install_command(info: dict[str, str], payload: Payload, interactive: bool) -> str:
    """The remote shell line: run install.sh as root from the payload dir, then clean up."""
    remote = info["dir"]
    sudo = sudo_prefix(info, interactive)
    args = [
        f"{remote}/{a}" if a in {p.name for p in payload.files} else a for a in payload.install_args
    ]
    script = shlex.join(["bash", f"{remote}/install.sh", *args])
    return f"{sudo}{script}; rc=$?; rm -rf {shlex.quote(remote)}; exit $rc"


def wait_first_stats(config: str | None, timeout: float) -> int:
    """On the Pi: print the first stats message of the running service (run there via ssh).

    With a broker it is the next ``<prefix>/stats`` message; without one, `emopi run` logs its
    stats to stderr, so it is the first ``stats {...}`` line of this run in the journal.
    """
    cfg = load_config(config)
    if not cfg.mqtt.enabled:
        return _first_stats_in_journal(timeout)
    from emopi.edge.mqtt.client import make_client

    settings = cfg.mqtt
    host, port = settings.endpoint()
    topic = f"{settings.prefix(cfg.resolved_device_id)}/stats"
    got: list[bytes | bytearray] = []
    client = make_client(settings, f"emopi-deploy-{os.getpid()}")
    client.on_connect = lambda c, *_: c.subscribe(topic)
    client.on_message = lambda _c, _u, msg: got.append(msg.payload)
    try:
        client.connect(host, port)
    except OSError as exc:
        print(f"cannot connect to the MQTT broker {host}:{port}: {exc}")
        return 1
    client.loop_start()
    try:
        _wait_until(lambda: bool(got), timeout)
    finally:
        client.loop_stop()
        client.disconnect()
    if not got:
        print(f"no message on {topic} within {timeout:.0f} s (see journalctl -u emopi)")
        return 1
    print(f"{topic}: {got[0].decode(errors='replace')}")
    return 0


def _wait_until(done: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        time.sleep(0.2)
    return done()


def _first_stats_in_journal(timeout: float) -> int:
    """The first stats log line of the current run of emopi.service (its invocation id)."""
    invocation = subprocess.run(
        ["systemctl", "show", "--property=InvocationID", "--value", "emopi.service"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    found: list[str] = []

    def look() -> bool:
        out = subprocess.run(
            ["journalctl", f"_SYSTEMD_INVOCATION_ID={invocation}", "--output=cat", "--no-pager"],
            capture_output=True,
            text=True,
        ).stdout
        found.extend(ln for ln in out.splitlines() if " stats {" in ln)
        return bool(found)

    if not invocation or not _wait_until(look, timeout):
        print(f"no stats line in the journal within {timeout:.0f} s (journalctl -u emopi)")
        return 1
    print(f"journal: {found[0]}")
    return 0


def report(ssh: Ssh, args: argparse.Namespace, sudo: str) -> None:
    print("\n== service")
    state = ssh.run("systemctl is-active emopi.service || true").strip()
    print(f"  emopi.service is {state}")
    status = ssh.run("systemctl status emopi.service --no-pager --lines=5 2>&1 || true")
    print("\n".join(f"  {ln}" for ln in status.splitlines()))
    if state != "active":
        raise EmopiError(f"emopi.service on {ssh.target} is {state}: see journalctl -u emopi")
    if args.stats_timeout <= 0:
        return
    print(f"\n== first stats message (waiting up to {args.stats_timeout:.0f} s)")
    code = (
        "import sys; from emopi.tools.deploy import wait_first_stats; "
        f"sys.exit(wait_first_stats('/etc/emopi/emopi.toml', {args.stats_timeout}))"
    )
    out = ssh.run(
        f"{sudo}{REMOTE_VENV}/bin/python -c {shlex.quote(code)} || true",
        timeout=args.stats_timeout + SSH_TIMEOUT_S,
    )
    print("\n".join(f"  {ln}" for ln in out.splitlines()))


def deploy_ssh(args: argparse.Namespace, payload: Payload) -> int:
    interactive = sys.stdin.isatty() and not args.batch
    ssh = Ssh(args.target, args.port, args.identity, args.ssh_option, batch=not interactive)
    info: dict[str, str] = {}
    try:
        print(f"== connecting to {args.target}")
        ssh.connect()
        info = _probe(ssh)
        print(f"  {info.get('os', '?')}, {info.get('arch', '?')}; payload -> {info['dir']}")
        ssh.copy(payload.files, info["dir"])
        print("\n== installing")
        rc, lines = ssh.stream(install_command(info, payload, interactive), tty=interactive)
        if rc != 0:
            why = next((ln for ln in reversed(lines) if ln.strip()), f"exit {rc}")
            if rc == 255:
                raise EmopiError(classify_ssh_error(args.target, args.port, "\n".join(lines)))
            if "sudo:" in why and "password" in why:
                why += " (run emopi deploy from a terminal, or allow passwordless sudo)"
            raise EmopiError(f"install on {args.target} failed: {why.strip()}")
        if args.uninstall:
            print(f"\nuninstalled from {args.target} (config and state kept)")
            return 0
        if args.no_systemctl:
            print("\n== service: not started (--no-systemctl)")
        else:
            report(ssh, args, sudo_prefix(info, interactive))
    finally:
        if info:  # the install removes the payload; this covers a failed copy
            with contextlib.suppress(EmopiError, subprocess.TimeoutExpired):
                ssh.run(f"rm -rf {shlex.quote(info['dir'])}")
        ssh.close()
    print(f"\ndeployed to {args.target}")
    return 0


# ---------------------------------------------------------------------------- first boot
def hook_cmdline(cmdline: Path) -> str:
    """Bookworm: run emopi-firstrun.sh once at the first boot, chaining Imager's firstrun.sh."""
    line = cmdline.read_text().strip()
    if f"{PI_PAYLOAD}/emopi-firstrun.sh" in line:
        return "cmdline.txt already runs emopi-firstrun.sh"
    tokens = line.split()
    runs = [t for t in tokens if t.startswith("systemd.run=")]
    if runs and not runs[0].endswith("/firstrun.sh"):
        raise EmopiError(f"{cmdline} already runs {runs[0]}: add emopi-firstrun.sh to it by hand")
    if runs:  # Raspberry Pi Imager's customisation: ours runs it first, then adds emopi
        tokens = [SYSTEMD_RUN.split()[0] if t == runs[0] else t for t in tokens]
        what = "Imager's firstrun.sh now runs through emopi-firstrun.sh"
    else:
        tokens += SYSTEMD_RUN.split()
        what = "emopi-firstrun.sh runs on the first boot"
    for extra in SYSTEMD_RUN.split()[1:]:
        if extra not in tokens:
            tokens.append(extra)
    cmdline.write_text(" ".join(tokens) + "\n")  # the kernel command line is one line
    return f"cmdline.txt: {what}"


def hook_user_data(user_data: Path) -> str:
    """Trixie (cloud-init): add the first-boot install to runcmd, keeping everything else."""
    if not user_data.is_file():
        return (
            "cloud-init image without user-data: copy deploy/firstboot/user-data and "
            "network-config next to emopi/ and fill in every CHANGE_ME"
        )
    text = user_data.read_text()
    if f"{PI_PAYLOAD}/emopi-firstboot.sh" in text:
        return "user-data already runs emopi-firstboot.sh"
    if not text.lstrip().startswith("#cloud-config"):
        raise EmopiError(f"{user_data} is not #cloud-config: add runcmd {RUNCMD} by hand")
    lines = text.splitlines()
    starts = [i for i, ln in enumerate(lines) if ln.startswith("runcmd:")]
    if starts and lines[starts[0]].strip() != "runcmd:":
        raise EmopiError(f"{user_data} has an inline runcmd: add {RUNCMD} to it by hand")
    if starts:
        i = starts[0]
        following = next((ln for ln in lines[i + 1 :] if ln.strip()), "  - x")
        indent = following[: len(following) - len(following.lstrip())]
        lines.insert(i + 1, f"{indent}- {RUNCMD}")
    else:
        lines += ["", "# emopi: install and start the service once the network is up", "runcmd:"]
        lines.append(f"  - {RUNCMD}")
    user_data.write_text("\n".join(lines) + "\n")
    return "user-data: runcmd installs emopi on the first boot"


def hook_first_boot(boot: Path) -> str:
    """Make the first boot of a freshly flashed card install the staged payload."""
    if (boot / "user-data").is_file() or (boot / "meta-data").is_file():
        return hook_user_data(boot / "user-data")
    if (boot / "cmdline.txt").is_file():
        return hook_cmdline(boot / "cmdline.txt")
    return f"{boot} is no boot partition (no cmdline.txt or user-data): first boot not hooked"


def stage(args: argparse.Namespace, payload: Payload, checkout: Path) -> int:
    """Copy the payload into DIR/emopi (e.g. the SD card's boot partition) for first boot."""
    dest = Path(args.stage) / "emopi"
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("emopi-*.whl"):
        old.unlink()  # exactly one wheel, so the first-boot script cannot pick a stale one
    for src in [*payload.files, *(checkout / name for name in FIRSTBOOT_FILES)]:
        if src.is_dir():
            shutil.copytree(src, dest / src.name, dirs_exist_ok=True)
        else:
            shutil.copyfile(src, dest / src.name)
    (dest / "install-args").write_text(shlex.join(payload.install_args) + "\n")
    (dest / "install-args.done").unlink(missing_ok=True)
    print(f"staged {len(list(dest.iterdir()))} files in {dest}")
    print("first boot runs: emopi/install.sh " + shlex.join(payload.install_args))
    print(hook_first_boot(Path(args.stage)))
    return 0


def _deploy(args: argparse.Namespace) -> int:
    if not args.stage and not args.target:
        raise EmopiError("give a target (pi@host) or --stage DIR")
    if args.uninstall and args.stage:
        raise EmopiError("--uninstall needs a target (pi@host), not --stage")
    if not args.stage and shutil.which("ssh") is None:
        raise EmopiError("no ssh client found: apt install openssh-client")
    checkout = find_checkout(args.source)
    with tempfile.TemporaryDirectory(prefix="emopi-deploy-") as tmp:
        if not args.uninstall:
            print(f"== building from {checkout}")
        payload = make_payload(args, checkout, Path(tmp))
        print(f"  {payload.files[0].name}")
        if args.stage:
            return stage(args, payload, checkout)
        return deploy_ssh(args, payload)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "deploy",
        help="Build and push emopi to a Raspberry Pi over SSH.",
        description="Build the wheel, copy it with install.sh to a Raspberry Pi over SSH, install "
        "it as the emopi service (an upgrade when already installed) and report its status.",
    )
    p.add_argument("target", nargs="?", help="[user@]host of the Pi, as for ssh")
    p.add_argument(
        "--config", metavar="FILE", help="config installed as /etc/emopi/emopi.toml if none exists"
    )
    p.add_argument(
        "--force-config", action="store_true", help="replace an existing config (kept as .bak)"
    )
    p.add_argument(
        "--model", metavar="FILE", help="a .tflite model (with its .json sidecar) for the service"
    )
    p.add_argument("--port", type=int, help="SSH port (default: ssh's, usually 22)")
    p.add_argument("-i", "--identity", metavar="KEY", help="SSH private key file")
    p.add_argument(
        "-o",
        "--ssh-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra ssh option, repeatable (e.g. -o StrictHostKeyChecking=accept-new)",
    )
    p.add_argument("--wheel", metavar="FILE", help="install this wheel instead of building one")
    p.add_argument("--source", metavar="DIR", help="emopi checkout to build (default: this one)")
    p.add_argument(
        "--wheelhouse", metavar="DIR", help="directory of wheels to install from (offline Pi)"
    )
    p.add_argument(
        "--prefix", metavar="DIR", help="install under this root on the Pi (test installs)"
    )
    p.add_argument(
        "--no-systemctl", action="store_true", help="install the unit but do not start it"
    )
    p.add_argument(
        "--install-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra install.sh argument, repeatable (e.g. --install-arg=--no-apt)",
    )
    p.add_argument(
        "--stats-timeout",
        type=float,
        metavar="SECONDS",
        default=75.0,
        help="seconds to wait for the first stats message (0: do not wait; default 75)",
    )
    p.add_argument(
        "--batch", action="store_true", help="never prompt (no password, no sudo password)"
    )
    p.add_argument(
        "--uninstall",
        action="store_true",
        help="stop and remove emopi from the Pi (the config and the state stay)",
    )
    p.add_argument(
        "--stage",
        metavar="DIR",
        help="write the payload to DIR/emopi (an SD card's boot partition) instead of SSH",
    )
    p.set_defaults(handler=_deploy)
