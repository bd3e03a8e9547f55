"""The [mqtt] config section: defaults, validation with one clear line, secrets."""

from __future__ import annotations

import pytest

from emopi.edge.errors import EmopiError
from emopi.edge.mqtt.settings import MqttSettings


def test_defaults_and_endpoint():
    s = MqttSettings()
    assert not s.enabled and s.qos == 1 and s.discovery and not s.tls.active
    assert not s.tls.insecure
    assert s.prefix("kiosk") == "emopi/kiosk"
    assert MqttSettings(topic_prefix="site/hall/").prefix("kiosk") == "site/hall"
    embedded = MqttSettings.from_dict({"host": "embedded", "embedded_port": 18830})
    assert embedded.embedded and embedded.endpoint() == ("127.0.0.1", 18830)
    assert MqttSettings(host="b.lan", port=8883).endpoint() == ("b.lan", 8883)


def test_from_dict_parses_a_toml_table(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    s = MqttSettings.from_dict(
        {
            "host": "b.lan",
            "port": 8883,
            "protocol": 5,
            "state_interval": 2,
            "tls": {"ca_file": str(ca)},
        }
    )
    assert s.protocol == "5" and s.state_interval == 2.0 and s.tls.active


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        ({"hots": "x"}, "unknown key 'hots'"),
        ({"port": "1883"}, "port must be int"),
        ({"port": True}, "port must be int"),
        ({"port": 70000}, "port must be 1..65535"),
        ({"protocol": "4"}, 'protocol must be "5" or "3.1.1"'),
        ({"qos": 3}, "qos must be 0, 1 or 2"),
        ({"topic_prefix": "emopi/#"}, "topic_prefix must not contain"),
        ({"password_file": "/nonexistent"}, "password_file is set but username is empty"),
        ({"username": "u", "password_file": "/nonexistent"}, "password_file /nonexistent does not"),
        ({"tls": {"certfile": "/c.pem"}}, "certfile and keyfile must be given together"),
        ({"tls": {"ca_file": "/nonexistent.pem"}}, "ca_file /nonexistent.pem does not exist"),
        ({"tls": {"insecure": "yes"}}, "insecure must be bool"),
        ({"tls": "on"}, "tls must be a table"),
        ({"spool_max_events": 0}, "spool_max_events must be >= 1"),
    ],
)
def test_bad_values_are_one_clear_line(table, needle):
    with pytest.raises(EmopiError) as err:
        MqttSettings.from_dict(table)
    assert needle in str(err.value) and "\n" not in str(err.value)


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
