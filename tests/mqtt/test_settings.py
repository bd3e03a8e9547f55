"""The [mqtt] config section: defaults, validation with one clear line, secrets."""

from __future__ import annotations

import pytest

from emopi.edge.config import load_config
from emopi.edge.errors import ConfigError, EmopiError
from emopi.edge.mqtt.settings import MqttSettings


def mqtt(table: dict) -> MqttSettings:
    """``[mqtt]`` as the config loader merges and checks it (no other path exists)."""
    return load_config(None, {}, {f"mqtt.{k}": v for k, v in _flat(table)}).mqtt


def _flat(table: dict, prefix: str = ""):
    for key, value in table.items():
        if isinstance(value, dict):
            yield from _flat(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def test_defaults_and_endpoint():
    s = MqttSettings()
    assert not s.enabled and s.qos == 1 and s.discovery and not s.tls.active
    assert not s.tls.insecure
    assert s.prefix("kiosk") == "emopi/kiosk"
    assert MqttSettings(topic_prefix="site/hall/").prefix("kiosk") == "site/hall"
    embedded = mqtt({"host": "embedded", "embedded_port": 18830})
    assert embedded.embedded and embedded.endpoint() == ("127.0.0.1", 18830)
    assert MqttSettings(host="b.lan", port=8883).endpoint() == ("b.lan", 8883)


def test_a_toml_table_merges_like_every_section(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    path = tmp_path / "emopi.toml"
    path.write_text(
        f'[mqtt]\nhost = "b.lan"\nport = 8883\nprotocol = 5\nstate_interval = 2\n'
        f'[mqtt.tls]\nca_file = "{ca}"\n'
    )
    s = load_config(path, {}).mqtt
    assert s.protocol == "5" and s.state_interval == 2.0 and s.tls.active


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[mqtt]\nhots = 'x'\n", "unknown key [mqtt] hots"),
        ("[mqtt]\nport = '1883'\n", "[mqtt] port must be an integer, not '1883'"),
        ("[mqtt]\nport = true\n", "[mqtt] port must be an integer, not True"),
        ("[mqtt]\nport = 70000\n", "[mqtt] port must be 1..65535, not 70000"),
        ("[mqtt]\nprotocol = '4'\n", '[mqtt] protocol must be "5" or "3.1.1", not \'4\''),
        ("[mqtt]\nqos = 3\n", "[mqtt] qos must be 0, 1 or 2, not 3"),
        ("[mqtt]\nkeepalive = 2\n", "[mqtt] keepalive must be >= 5 seconds, not 2"),
        ("[mqtt]\ntopic_prefix = 'emopi/#'\n", "[mqtt] topic_prefix must not contain"),
        ("[mqtt]\npassword_file = '/nonexistent'\n", "password_file is set but username is"),
        (
            "[mqtt]\nusername = 'u'\npassword_file = '/nonexistent'\n",
            "[mqtt] password_file /nonexistent does not exist",
        ),
        ("[mqtt.tls]\ncertfile = '/c.pem'\n", "[mqtt.tls] certfile needs its private key file too"),
        ("[mqtt.tls]\nca_file = '/nonexistent.pem'\n", "ca_file /nonexistent.pem does not exist"),
        ("[mqtt.tls]\ninsecure = 'yes'\n", "[mqtt.tls] insecure must be true or false"),
        ("[mqtt]\ntls = 'on'\n", "[mqtt.tls] must be a table"),
        ("[mqtt]\nspool_max_events = 0\n", "[mqtt] spool_max_events must be >= 1, not 0"),
    ],
)
def test_bad_values_are_one_clear_line_naming_the_file(tmp_path, text, needle):
    path = tmp_path / "emopi.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path, {})
    message = str(err.value)
    assert needle in message and message.startswith(f"config {path}: ") and "\n" not in message


def test_validate_alone_checks_the_same_bounds():
    """`emopi listen` and MqttSink check settings they did not load: the same rules apply."""
    with pytest.raises(ConfigError, match=r"^\[mqtt\] port must be 1..65535, not 0$") as err:
        MqttSettings(port=0).validate()
    assert err.value.key == "mqtt.port"


def test_password_from_env_or_file_and_never_in_repr(tmp_path, monkeypatch):
    secret = tmp_path / "pw"
    secret.write_text("from-file\nignored\n")
    s = MqttSettings(username="u", password_file=str(secret))
    monkeypatch.delenv("EMOPI_MQTT_PASSWORD", raising=False)
    assert s.password() == "from-file"
    monkeypatch.setenv("EMOPI_MQTT_PASSWORD", "from-env")
    assert s.password() == "from-env"
    assert "from-file" not in repr(s) and "from-env" not in repr(s)
    monkeypatch.delenv("EMOPI_MQTT_PASSWORD")
    secret.write_text("")
    with pytest.raises(EmopiError, match="cannot be read \\(it is empty\\)"):
        s.password()


def test_the_same_device_name_at_two_sites_gets_two_client_ids():
    hall, lobby = (MqttSettings(site=site) for site in ("hall", "lobby"))
    assert hall.client_id_for("kiosk-1") == "emopi-hall-kiosk-1"
    assert lobby.client_id_for("kiosk-1") == "emopi-lobby-kiosk-1"
    assert MqttSettings().client_id_for("kiosk-1") == "emopi-kiosk-1"
    assert MqttSettings(client_id="fixed", site="hall").client_id_for("kiosk-1") == "fixed"
