"""The `emopi` CLI shell: help, version, unimplemented commands, doctor, import hygiene."""

from __future__ import annotations

import subprocess
import sys

from helpers import run_cli

SUBCOMMANDS = ("train", "evaluate", "quantize", "run", "bench", "deploy", "doctor")


def test_version():
    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.startswith("emopi 0.")


def test_help_lists_every_subcommand():
    out = run_cli("--help")
    assert out.returncode == 0
    for name in SUBCOMMANDS:
        assert name in out.stdout


def test_each_subcommand_has_help():
    for name in SUBCOMMANDS:
        out = run_cli(name, "--help")
        assert out.returncode == 0, (name, out.stderr)
        assert f"usage: emopi {name}" in out.stdout


def test_importing_edge_never_imports_tensorflow():
    code = (
        "import sys, emopi.edge, emopi.edge.contract, emopi.edge.cli, emopi.edge.doctor;"
        "from emopi.edge.cli import build_parser; build_parser();"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'));"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_doctor_tells_the_truth_about_this_machine():
    out = run_cli("doctor", "--broker", "127.0.0.1:1")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    by_name = {line[7:].split()[1]: line for line in lines}
    assert by_name["tensorflow"].startswith("[ ok ]")  # CI installs the train extra
    assert by_name["ai-edge-litert"].startswith("[ ok ]")
    assert any("haar cascade" in line and line.startswith("[ ok ]") for line in lines)
    broker = next(line for line in lines if " broker " in line)
    assert broker.startswith("[warn]") and "fix:" in broker


def test_doctor_sees_a_live_broker(mosquitto):
    out = run_cli("doctor", "--broker", f"127.0.0.1:{mosquitto.port}")
    broker = next(line for line in out.stdout.splitlines() if " broker " in line)
    assert broker.startswith("[ ok ]")
