"""Config: TOML < EMOPI_* < flags, and one clear line for every kind of mistake."""

from __future__ import annotations

import sys
from dataclasses import asdict, fields, is_dataclass
from pathlib import Path

import pytest
from helpers import run_cli

from emopi.edge.assets import ASSETS
from emopi.edge.config import Config, default_state_dir, load_config
from emopi.edge.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

TEMPLATE = ASSETS / "emopi.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "emopi.toml"
    path.write_text(text)
    return path


def test_precedence_defaults_toml_env_flags(tmp_path):
    path = write(
        tmp_path,
        '[detect]\nevery = 3\nmin_size = 40\n[classify]\nthreads = 2\n[mqtt]\nhost = "a.lan"\n',
    )
    env = {"EMOPI_DETECT_EVERY": "4", "EMOPI_CLASSIFY_THREADS": "3", "EMOPI_MQTT_PORT": "8883"}
    cfg = load_config(path, env, {"classify.threads": 1, "detect.width": None})
    assert cfg.detect.min_size == 40  # TOML over default
    assert cfg.detect.every == 4  # env over TOML
    assert cfg.classify.threads == 1  # flag over env
    assert cfg.detect.width == 256  # a flag that was not given changes nothing
    assert (cfg.mqtt.host, cfg.mqtt.port) == ("a.lan", 8883)
    assert cfg.smooth == Config().smooth


def test_env_mapping_of_nested_and_top_level_keys(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    env = {
        "EMOPI_DEVICE_ID": "hall-pi",
        "EMOPI_MQTT_TLS_CA_FILE": str(ca),
        "EMOPI_SOURCE_REALTIME": "true",
        "EMOPI_SMOOTH_DWELL": "1",  # an int where a float is expected is fine
        "EMOPI_SHARED_DATA": "/elsewhere",  # other programs' variables are ignored
        "EMOPI_MQTT_PASSWORD": "secret",  # read by MqttSettings.password(), not a key
    }
    cfg = load_config(None, env)
    assert cfg.device_id == "hall-pi" and cfg.resolved_device_id == "hall-pi"
    assert cfg.mqtt.tls.ca_file == str(ca) and cfg.mqtt.tls.active
    assert cfg.source.realtime is True
    assert cfg.smooth.dwell == 1.0 and isinstance(cfg.smooth.dwell, float)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[detect]\nevery = \n", "invalid TOML: .*line 2"),
        ("[detect]\nevry = 3\n", r"unknown key \[detect\] evry \(did you mean 'every'\?\)"),
        ("[mqtt]\nhots = 'x'\n", r"unknown key \[mqtt\] hots \(did you mean 'host'\?\)"),
        ("[mqtt.tls]\nca_fil = 'x'\n", r"\[mqtt.tls\] ca_fil \(did you mean 'ca_file'\?\)"),
        ("[detekt]\nevery = 3\n", r"unknown key detekt \(did you mean 'detect'\?\)"),
        ("[detect]\nevery = 'five'\n", r"\[detect\] every must be an integer, not 'five'"),
        ("[classify]\nbatch = 1\n", r"\[classify\] batch must be true or false, not 1"),
        ("detect = 3\n", r"\[detect\] must be a table"),
        ("[detect]\nevery = 0\n", r"\[detect\] every must be 1..100, not 0"),
        ("[smooth]\nmargin = 1.5\n", r"\[smooth\] margin must be in \[0, 1\), not 1.5"),
        ("[mqtt]\nqos = 3\n", r"\[mqtt\] qos must be 0, 1 or 2, not 3"),
        ("device_id = 'a/b'\n", "device_id may only hold"),
    ],
)
def test_toml_errors_are_one_clear_line(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=expected) as err:
        load_config(path, {})
    assert "\n" not in str(err.value)


def test_env_and_flag_errors_name_their_origin(tmp_path):
    with pytest.raises(ConfigError, match=r"environment EMOPI_DETECT_EVERY: .*integer"):
        load_config(None, {"EMOPI_DETECT_EVERY": "often"})
    with pytest.raises(ConfigError, match=r"EMOPI_DETECT_EVRY: unknown key \[detect\] evry"):
        load_config(None, {"EMOPI_DETECT_EVRY": "3"})
    with pytest.raises(ConfigError, match=r"command line: \[classify\] threads must be an"):
        load_config(None, {}, {"classify.threads": "many"})
    with pytest.raises(
        ConfigError, match=r"^command line: \[classify\] threads must be 1..64, not 0$"
    ):
        load_config(None, {}, {"classify.threads": 0})
    # with the flag's name known, the error names what the user typed
    with pytest.raises(ConfigError, match=r"^--threads must be 1..64, not 0$"):
        load_config(None, {}, {"classify.threads": 0}, {"classify.threads": "--threads"})
    with pytest.raises(
        ConfigError, match=r"^environment EMOPI_DETECT_EVERY: \[detect\] every must"
    ):
        load_config(None, {"EMOPI_DETECT_EVERY": "0"})
    # a rule over two settings names the one the user set, where it was set
    with pytest.raises(ConfigError, match=r"^--mqtt-password-file is set but username is empty$"):
        load_config(
            None,
            {},
            {"mqtt.password_file": "/etc/hostname"},
            {"mqtt.password_file": "--mqtt-password-file"},
        )
    with pytest.raises(ConfigError, match=r"config file .* does not exist"):
        load_config(tmp_path / "nope.toml", {})


def test_a_bad_flag_value_is_named_as_typed():
    out = run_cli("run", "--source", "demo", "--threads", "0", env={"EMOPI_CONFIG": ""})
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == ["emopi run: error: --threads must be 1..64, not 0"]


def test_bad_config_through_the_cli_is_one_line_without_traceback(tmp_path):
    path = write(tmp_path, "[detect]\nscale_factr = 1.2\n")
    out = run_cli("run", "--config", str(path), "--source", "demo")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert lines == [
        f"emopi run: error: config {path}: unknown key [detect] scale_factr "
        "(did you mean 'scale_factor'?)"
    ]
    assert out.stdout == ""
    env_out = run_cli("run", "--source", "demo", env={"EMOPI_CONFIG": str(path)})
    assert env_out.returncode == 2 and "scale_factr" in env_out.stderr
    assert "Traceback" not in env_out.stderr


def _keys(obj, prefix=()):
    for f in fields(obj):
        value = getattr(obj, f.name)
        if is_dataclass(value):
            yield from _keys(value, (*prefix, f.name))
        else:
            yield (*prefix, f.name)


def test_shipped_template_documents_every_key_with_default_values():
    data = tomllib.loads(TEMPLATE.read_text())
    flat = set()

    def walk(table, prefix=()):
        for k, v in table.items():
            if isinstance(v, dict):
                walk(v, (*prefix, k))
            else:
                flat.add((*prefix, k))

    walk(data)
    assert flat == set(_keys(Config()))  # every key, nothing unknown
    assert asdict(load_config(TEMPLATE, {})) == asdict(Config())  # the values are the defaults
    lines = TEMPLATE.read_text().splitlines()
    for i, line in enumerate(lines):  # each key has a comment above it or a group comment
        if "=" in line and not line.startswith("#"):
            above = [ln for ln in lines[max(0, i - 4) : i] if ln.startswith("#")]
            assert above, f"key without a comment: {line}"


def test_state_dir_default_and_override(tmp_path):
    assert default_state_dir().name == "emopi"
    cfg = load_config(None, {"EMOPI_STATE_DIR": str(tmp_path / "s")})
    assert cfg.resolved_state_dir == tmp_path / "s"
