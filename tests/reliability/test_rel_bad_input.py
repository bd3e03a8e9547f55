"""Bad input through the real `emopi run` in a subprocess: one clear line on stderr that says
what is wrong, exit code 2, no traceback (``--debug`` shows it), and no event lost: a spool
with undelivered events is left as it was."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from helpers import Mosquitto, free_port

from emopi.edge.contract import metadata_path, read_metadata, write_metadata
from emopi.edge.models import DEFAULT_MODEL
from emopi.edge.mqtt.spool import SPOOL_FILE, Spool

PASSWORD = "s3cret-for-tests"  # never printed, whatever goes wrong


def copy_model(folder: Path, name: str = "m.tflite") -> Path:
    model = folder / name
    shutil.copy(DEFAULT_MODEL, model)
    shutil.copy(metadata_path(DEFAULT_MODEL), metadata_path(model))
    return model


def edit_sidecar(model: Path, **changes) -> None:
    data = json.loads(metadata_path(model).read_text())
    data.update(changes)
    metadata_path(model).write_text(json.dumps(data))


def wrong_shape_model(folder: Path) -> Path:
    """The shipped model with its input made 64x64 (it still allocates: the network ends in a
    global pooling) and a sidecar that agrees: only the shape check can refuse it."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = copy_model(folder, "wide.tflite")
    tree = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model.read_bytes(), 0))
    graph = tree.subgraphs[0]
    tensor = graph.tensors[graph.inputs[0]]
    tensor.shape = np.array([1, 64, 64, 1], np.int32)
    tensor.shapeSignature = np.array([-1, 64, 64, 1], np.int32)
    builder = flatbuffers.Builder(1024)
    builder.Finish(tree.Pack(builder), file_identifier=b"TFL3")
    model.write_bytes(bytes(builder.Output()))
    meta = read_metadata(DEFAULT_MODEL)
    meta.input_shape = [1, 64, 64, 1]
    write_metadata(model, meta)
    return model


# --------------------------------------------------------------------------- the cases

# Each case builds its input in a folder and returns (arguments, environment, expected text).
Case = Callable[[Path], tuple[list[str], dict[str, str], str]]


def model_case(make: Callable[[Path], Path], expected: str) -> Case:
    def case(tmp: Path):
        return ["--model", str(make(tmp))], {}, expected

    return case


def config_case(text: str, expected: str) -> Case:
    def case(tmp: Path):
        path = tmp / "emopi.toml"
        path.write_text(text)
        return ["--config", str(path)], {}, expected.replace("{path}", str(path))

    return case


def truncated(tmp: Path, keep_hash: bool = True) -> Path:
    model = copy_model(tmp)
    model.write_bytes(model.read_bytes()[:100_000])
    if not keep_hash:
        edit_sidecar(model, sha256="")
    return model


def not_tflite(tmp: Path) -> Path:
    model = copy_model(tmp)
    model.write_text("<html>404 Not Found</html>\n")  # a download gone wrong
    edit_sidecar(model, sha256="")
    return model


def labels_swapped(tmp: Path) -> Path:
    model = copy_model(tmp)
    labels = json.loads(metadata_path(model).read_text())["labels"]
    edit_sidecar(model, labels=[labels[1], labels[0], *labels[2:]])
    return model


def no_sidecar(tmp: Path) -> Path:
    model = copy_model(tmp)
    metadata_path(model).unlink()
    return model


def sidecar_not_json(tmp: Path) -> Path:
    model = copy_model(tmp)
    metadata_path(model).write_text("{labels: oops")
    return model


def state_dir_is_a_file(tmp: Path):
    (tmp / "state").write_text("")
    args = ["--mqtt-host", "127.0.0.1", "--mqtt-port", "9"]
    return args, {"EMOPI_STATE_DIR": str(tmp / "state")}, "cannot create the state directory"


def junk_cascade(tmp: Path):
    cascade = tmp / "face.xml"
    cascade.write_text("<opencv_storage><nonsense/></opencv_storage>\n")
    return [], {"EMOPI_DETECT_CASCADE": str(cascade)}, "could not be loaded (corrupt or not"


def tls_file_not_a_certificate(tmp: Path):
    ca = tmp / "ca.pem"
    ca.write_text("not a certificate\n")
    args = ["--mqtt-host", "127.0.0.1", "--mqtt-ca-file", str(ca)]
    return args, {}, "[mqtt.tls] cannot load the certificates"


def password_file(content: str, expected: str) -> Case:
    def case(tmp: Path):
        secret = tmp / "mqtt.pass"
        secret.write_text(content)
        secret.chmod(0o600)
        args = ["--mqtt-host", "127.0.0.1", "--mqtt-username", "emopi"]
        return [*args, "--mqtt-password-file", str(secret)], {}, expected

    return case


def metrics_port_taken(tmp: Path):
    import socket

    holder = socket.create_server(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    case_resources.append(holder)
    return ["--metrics-port", str(port)], {}, f"cannot serve Prometheus metrics on 127.0.0.1:{port}"


case_resources: list = []

CASES: dict[str, Case] = {
    # models
    "model missing": lambda tmp: (["--model", str(tmp / "none.tflite")], {}, "does not exist"),
    "model truncated": model_case(truncated, "does not match its metadata (sha256 differs)"),
    "model truncated, no hash": model_case(
        lambda t: truncated(t, keep_hash=False), "cannot load model"
    ),
    "model not TFLite": model_case(not_tflite, "is not a TFLite model (no TFL3 identifier)"),
    "model wrong input shape": model_case(
        wrong_shape_model, "takes input [1, 64, 64, 1], emopi needs [1, 48, 48, 1]"
    ),
    "metadata labels mismatch": model_case(labels_swapped, "do not match emopi's"),
    "metadata missing": model_case(no_sidecar, "a model must be written by `emopi quantize`"),
    "metadata not JSON": model_case(sidecar_not_json, "is not valid JSON"),
    # configuration
    "config missing": lambda tmp: (["--config", str(tmp / "x.toml")], {}, "does not exist"),
    "invalid TOML": config_case("[detect\nevery = 3\n", "config {path}: invalid TOML"),
    "unknown key": config_case(
        "[track]\ntimout = 2\n", "unknown key [track] timout (did you mean 'timeout'?)"
    ),
    "unknown section": config_case(
        "[mqqt]\nhost = 'x'\n", "unknown key mqqt (did you mean 'mqtt'?)"
    ),
    "wrong type": config_case(
        "[detect]\nevery = '5'\n", "[detect] every must be an integer, not '5'"
    ),
    "out of range": config_case(
        "[smooth]\nmargin = 2.0\n", "[smooth] margin must be in [0, 1), not 2.0"
    ),
    "negative reconnect": config_case(
        "[source]\nreconnect_min = -1\n", "[source] reconnect_min must be 0.01..600 s"
    ),
    "bad environment value": lambda tmp: (
        [],
        {"EMOPI_TRACK_MIN_HITS": "two"},
        "environment EMOPI_TRACK_MIN_HITS: [track] min_hits",
    ),
    # the spool directory
    "state dir is a file": state_dir_is_a_file,
    # detection and sources
    "Haar XML missing": lambda tmp: (
        [],
        {"EMOPI_DETECT_CASCADE": str(tmp / "gone.xml")},
        f"{tmp / 'gone.xml'} does not exist",
    ),
    "Haar XML unknown name": lambda tmp: (
        [],
        {"EMOPI_DETECT_CASCADE": "haarcascade_nose.xml"},
        "install opencv-python-headless<5",
    ),
    "Haar XML corrupt": junk_cascade,
    "unknown source": lambda tmp: (
        ["--source", "webcam"],
        {},
        "source 'webcam' is not a file, folder, camera index",
    ),
    "camera device absent": lambda tmp: (
        ["--source", "/dev/video99"],
        {},
        "cannot open camera /dev/video99",
    ),
    "empty image folder": lambda tmp: (["--source", str(tmp)], {}, f"folder {tmp} holds no images"),
    # the broker
    "broker host with a scheme": lambda tmp: (
        ["--mqtt-host", "mqtt://broker.lan"],
        {},
        "--mqtt-host must be a host name or an IP",
    ),
    "broker host with a port": lambda tmp: (
        ["--mqtt-host", "broker.lan:1883"],
        {},
        "no scheme, port or path: the port is a setting of its own",
    ),
    "broker port out of range": lambda tmp: (
        ["--mqtt-host", "b.lan", "--mqtt-port", "70000"],
        {},
        "--mqtt-port must be 1..65535, not 70000",
    ),
    "password file missing": lambda tmp: (
        ["--mqtt-host", "b.lan", "--mqtt-username", "u", "--mqtt-password-file", "/nope"],
        {},
        "--mqtt-password-file /nope does not exist",
    ),
    "password file empty": password_file("", "cannot be read (it is empty)"),
    "TLS CA file missing": lambda tmp: (
        ["--mqtt-host", "b.lan", "--mqtt-ca-file", str(tmp / "ca.pem")],
        {},
        f"--mqtt-ca-file {tmp / 'ca.pem'} does not exist",
    ),
    "TLS CA not a certificate": tls_file_not_a_certificate,
    "metrics port taken": metrics_port_taken,
}


def run(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "emopi.edge.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "EMOPI_CONFIG": os.devnull, **env},
    )


def check_one_line(args: list[str], env: dict[str, str], expected: str, info: bool = False) -> str:
    """Run without, then with --debug; return the one line of the plain run.

    With ``info``, INFO log lines may come before it (e.g. that the spool keeps its events).
    """
    # One after the other: both may need the same state directory, whose spool is locked.
    plain = run(["run", *args], env)
    out, err = plain.communicate(timeout=60)
    debug = run(["--debug", "run", *args], env)
    _debug_out, debug_err = debug.communicate(timeout=60)
    lines = [ln for ln in err.strip().splitlines() if not (info and " INFO emopi." in ln)]
    assert plain.returncode == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("emopi run: error: ") and expected in lines[0], lines[0]
    assert out == ""
    assert debug.returncode != 0 and "Traceback (most recent call last)" in debug_err
    assert expected in debug_err
    assert PASSWORD not in err + debug_err
    return lines[0]


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_clear_line(name, tmp_path):
    args, env, expected = CASES[name](tmp_path)
    try:
        check_one_line(["--source", "demo", "--max-frames", "3", *args], env, expected)
    finally:
        while case_resources:
            case_resources.pop().close()


# --------------------------------------------------------------------------- the broker


@pytest.fixture(scope="module")
def password_broker(tmp_path_factory) -> Mosquitto:
    """A mosquitto that only lets user ``emopi`` with ``PASSWORD`` in."""
    folder = tmp_path_factory.mktemp("auth")
    passwd = folder / "passwd"
    binary = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    subprocess.run([binary, "-b", "-c", str(passwd), "emopi", PASSWORD], check=True)
    port = free_port()
    conf = folder / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {passwd}\n"
        "persistence false\nuser root\n"
    )
    broker = Mosquitto(conf, port)
    broker.start()
    yield broker
    broker.stop()


def test_bad_credentials_stop_the_run_and_keep_the_spool(password_broker, tmp_path):
    state = tmp_path / "state"
    spool = Spool(state / SPOOL_FILE)
    for seq in (1, 2, 3):
        spool.append(json.dumps({"seq": seq}))  # undelivered events of an earlier run
    spool.close()
    wrong = tmp_path / "wrong.pass"
    wrong.write_text("not-the-password\n")
    wrong.chmod(0o600)
    args = [
        "--source", "demo", "--mqtt-host", "127.0.0.1", "--mqtt-port", str(password_broker.port),
        "--mqtt-username", "emopi", "--mqtt-password-file", str(wrong),
    ]  # fmt: skip
    line = check_one_line(args, {"EMOPI_STATE_DIR": str(state)}, "refused the connection", True)
    assert "check [mqtt] username and password_file" in line and "not-the-password" not in line
    spool = Spool(state / SPOOL_FILE)
    assert [json.loads(p)["seq"] for _, p in spool.pending()] == [1, 2, 3]
    spool.close()

    # The same from the environment: EMOPI_MQTT_PASSWORD, never echoed either.
    args = args[: args.index("--mqtt-password-file")]
    env = {"EMOPI_STATE_DIR": str(state), "EMOPI_MQTT_PASSWORD": PASSWORD + "x"}
    line = check_one_line(args, env, "refused the connection", info=True)
    assert PASSWORD not in line


def keeps_running(args: list[str], env: dict[str, str], expected: str, tmp_path: Path) -> str:
    """A broker problem that may be temporary: one warning line, then the run goes on and
    the events are spooled. Returns the warning."""
    state = tmp_path / "state"
    result = subprocess.run(
        [sys.executable, "-m", "emopi.edge.cli", "run", "--source", "demo", "--no-realtime",
         "--max-frames", "40", "--stdout", *args],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "EMOPI_CONFIG": os.devnull, "EMOPI_STATE_DIR": str(state),
             "EMOPI_MQTT_CONNECT_TIMEOUT": "1", **env},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    warnings = [ln for ln in result.stderr.splitlines() if " WARNING " in ln or " ERROR " in ln]
    assert len(warnings) == 1, result.stderr
    assert expected in warnings[0] and "events are spooled" in warnings[0]
    events = [json.loads(line) for line in result.stdout.splitlines()]
    spool = Spool(state / SPOOL_FILE)
    assert [json.loads(p)["seq"] for _, p in spool.pending()] == [e["seq"] for e in events]
    spool.close()
    assert events
    return warnings[0]


def test_unknown_broker_host_runs_on_and_spools(tmp_path):
    keeps_running(
        ["--mqtt-host", "no-such-broker.invalid"], {}, "cannot resolve the host name", tmp_path
    )


def test_nothing_listening_runs_on_and_spools(tmp_path):
    port = str(free_port())
    keeps_running(
        ["--mqtt-host", "127.0.0.1", "--mqtt-port", port], {}, "connection refused", tmp_path
    )


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory) -> tuple[Mosquitto, Path]:
    """A TLS mosquitto with a self-signed certificate, and an unrelated CA beside it."""
    folder = tmp_path_factory.mktemp("tls")
    for name in ("server", "other"):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
             "-keyout", f"{name}.key", "-out", f"{name}.crt"],
            cwd=folder, check=True, capture_output=True,
        )  # fmt: skip
    port = free_port()
    conf = folder / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\ncertfile {folder / 'server.crt'}\n"
        f"keyfile {folder / 'server.key'}\nallow_anonymous true\npersistence false\nuser root\n"
    )
    broker = Mosquitto(conf, port)
    broker.start()
    yield broker, folder
    broker.stop()


def test_tls_failures_run_on_and_spool(tls_broker, mosquitto, tmp_path):
    """An unknown CA (or a Pi whose clock is not set yet) and TLS to a plain port: one line
    saying so; emopi keeps trying and spools meanwhile."""
    broker, pki = tls_broker
    args = ["--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker.port)]
    line = keeps_running(
        [*args, "--mqtt-ca-file", str(pki / "other.crt")], {}, "TLS certificate verification",
        tmp_path / "a",
    )  # fmt: skip
    assert "check [mqtt.tls] ca_file" in line
    plain = ["--mqtt-host", "127.0.0.1", "--mqtt-port", str(mosquitto.port)]
    keeps_running(
        [*plain, "--mqtt-ca-file", str(pki / "server.crt")], {}, "TLS handshake failed",
        tmp_path / "b",
    )  # fmt: skip
    # The right CA works (the test's own check that the broker is fine).
    ok = subprocess.run(
        [sys.executable, "-m", "emopi.edge.cli", "run", "--source", "demo", "--no-realtime",
         "--max-frames", "5", *args, "--mqtt-ca-file", str(pki / "server.crt")],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "EMOPI_CONFIG": os.devnull, "EMOPI_STATE_DIR": str(tmp_path / "c")},
    )  # fmt: skip
    assert ok.returncode == 0 and "WARNING" not in ok.stderr, ok.stderr
