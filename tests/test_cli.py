"""The `emopi` CLI shell: help, version, errors and --debug, doctor, import hygiene."""

from __future__ import annotations

import pytest
from helpers import modules_loaded, run_cli

SUBCOMMANDS = ("train", "evaluate", "quantize", "card", "run", "bench", "deploy", "doctor")


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
    """Every module of the Pi runtime, and the parser with its plugins' registration."""
    imports = (
        "import importlib, pkgutil, emopi.edge\n"
        "for m in pkgutil.walk_packages(emopi.edge.__path__, 'emopi.edge.'):\n"
        "    if not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
    )
    loaded = modules_loaded(imports, ("emopi", "tensorflow", "keras"))
    assert "emopi.edge.vision.sources.live" in loaded and "emopi.edge.mqtt.sink" in loaded
    assert [m for m in loaded if m.startswith(("tensorflow", "keras", "emopi.train"))] == []
    parser = "from emopi.edge.cli import build_parser; build_parser()"  # plugins register too
    assert modules_loaded(parser, ("tensorflow", "keras")) == []


def test_debug_keeps_the_exit_status_and_adds_the_traceback(tmp_path):
    args = ("run", "--config", str(tmp_path / "missing.toml"), "--source", "demo")
    plain, debug = run_cli(*args), run_cli("--debug", *args)
    assert plain.returncode == debug.returncode == 2
    assert "Traceback" not in plain.stderr and "Traceback" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1] == plain.stderr.strip()


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


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_doctor_names_the_training_backend_and_device(backend):
    out = run_cli("doctor", "--broker", "127.0.0.1:1", env={"KERAS_BACKEND": backend})
    line = next(line for line in out.stdout.splitlines() if " keras backend " in line)
    assert line.startswith("[ ok ]") and f" on {backend} " in line and line.endswith(", cpu")


def test_doctor_sees_a_live_broker(mosquitto):
    out = run_cli("doctor", "--broker", f"127.0.0.1:{mosquitto.port}")
    broker = next(line for line in out.stdout.splitlines() if " broker " in line)
    assert broker.startswith("[ ok ]")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("run", "--max-frames", "0"), "argument --max-frames: must be >= 1, not 0"),
        (("run", "--duration", "soon"), "argument --duration: must be a number, not 'soon'"),
        (("bench", "--frames", "many"), "argument --frames: must be an integer, not 'many'"),
    ],
)
def test_bad_numbers_fail_in_one_line(args, message):
    out = run_cli(*args)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].endswith(message)
