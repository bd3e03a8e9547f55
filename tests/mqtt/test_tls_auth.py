"""A mosquitto with TLS (self-signed CA made here with openssl), client certificates and
password auth: the right credentials work, wrong ones fail with one clear line."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from helpers import run_cli
from mqtt_driver import make_event, wait_until
from paho.mqtt.enums import CallbackAPIVersion
from relkit import write_config

from emopi.edge.errors import EmopiError
from emopi.edge.mqtt.settings import MqttSettings, TlsSettings

USER, PASSWORD = "emopi", "correct horse battery"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d: Path, name: str) -> None:
    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )  # fmt: skip


def make_leaf(d: Path, name: str, ca: str, usage: str) -> None:
    openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
        cwd=d,
    )  # fmt: skip
    (d / f"{name}.ext").write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        f"extendedKeyUsage={usage}\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext",
        cwd=d,
    )  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    if not shutil.which("openssl"):
        pytest.fail("openssl is not installed: apt-get install -y openssl")
    d = tmp_path_factory.mktemp("pki")
    make_ca(d, "ca")
    make_ca(d, "other-ca")
    make_leaf(d, "server", "ca", "serverAuth")
    make_leaf(d, "client", "ca", "clientAuth")
    (d / "password").write_text(PASSWORD + "\n")
    (d / "wrong-password").write_text("wrong\n")
    return d


@pytest.fixture
def secure_broker(own_mosquitto, pki):
    """``own_mosquitto`` restarted as a TLS listener requiring client certs and passwords."""
    binary = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    passwd = pki / "passwd"
    subprocess.run([binary, "-b", "-c", str(passwd), USER, PASSWORD], check=True)
    own_mosquitto.stop()
    own_mosquitto.conf.write_text(
        f"listener {own_mosquitto.port} 127.0.0.1\n"
        f"cafile {pki / 'ca.crt'}\ncertfile {pki / 'server.crt'}\nkeyfile {pki / 'server.key'}\n"
        "require_certificate true\nallow_anonymous false\n"
        f"password_file {passwd}\npersistence false\nuser root\n"
    )
    own_mosquitto.start()
    return own_mosquitto


def tls_settings(
    broker, pki: Path, password_file: str = "", ca: str = "ca.crt", **tls
) -> MqttSettings:
    return MqttSettings(
        host="127.0.0.1",
        port=broker.port,
        username=USER,
        password_file=password_file,
        discovery=False,
        tls=TlsSettings(
            ca_file=str(pki / ca),
            certfile=str(pki / "client.crt"),
            keyfile=str(pki / "client.key"),
            **tls,
        ),
    )


def test_right_credentials_over_tls_deliver_events(secure_broker, pki, make_sink, caplog):
    """An event published over TLS with a client certificate and a password reaches a
    subscriber (itself on TLS with its own credentials)."""
    got: list[bytes] = []
    subscribed = threading.Event()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="tls-subscriber")
    sub.username_pw_set(USER, PASSWORD)
    sub.tls_set(
        ca_certs=str(pki / "ca.crt"),
        certfile=str(pki / "client.crt"),
        keyfile=str(pki / "client.key"),
    )
    sub.on_connect = lambda c, *_: c.subscribe("emopi/tls-pi/event", qos=1)
    sub.on_subscribe = lambda *_: subscribed.set()
    sub.on_message = lambda _c, _u, m: got.append(m.payload)
    sub.connect("127.0.0.1", secure_broker.port)
    sub.loop_start()
    try:
        assert subscribed.wait(10), "the TLS subscriber could not subscribe"
        sink = make_sink(tls_settings(secure_broker, pki, str(pki / "password")), "tls-pi")
        sink.wait_connected(10)
        sink.publish_event(make_event(1, device_id="tls-pi"))
        wait_until(lambda: len(got) >= 1)
    finally:
        sub.disconnect()
        sub.loop_stop()
    event = json.loads(got[0])
    assert (event["seq"], event["device_id"]) == (1, "tls-pi")
    assert PASSWORD not in caplog.text


def test_password_from_env_and_insecure_skip_verify(secure_broker, pki, make_sink, monkeypatch):
    """$EMOPI_MQTT_PASSWORD wins over password_file: the file holds a wrong password here."""
    settings = tls_settings(
        secure_broker, pki, str(pki / "wrong-password"), ca="other-ca.crt", insecure=True
    )
    monkeypatch.delenv("EMOPI_MQTT_PASSWORD", raising=False)
    refused = make_sink(settings)  # the file alone: the broker says no
    with pytest.raises(EmopiError, match="refused the connection"):
        refused.wait_connected(10)
    assert refused.refused
    refused.close(timeout=0)  # frees the state directory's spool for the second sink
    monkeypatch.setenv("EMOPI_MQTT_PASSWORD", PASSWORD)
    assert settings.password() == PASSWORD
    make_sink(settings).wait_connected(10)  # same settings, the variable's password: accepted


def test_wrong_password_is_refused_with_one_clear_line(secure_broker, pki, make_sink, caplog):
    sink = make_sink(tls_settings(secure_broker, pki, str(pki / "wrong-password")))
    with pytest.raises(EmopiError) as err:
        sink.wait_connected(10)
    message = str(err.value)
    assert sink.refused
    assert "\n" not in message
    assert f"MQTT broker 127.0.0.1:{secure_broker.port} refused the connection" in message
    assert "password_file" in message
    assert "wrong" not in message and PASSWORD not in caplog.text


def test_unknown_ca_fails_verification_with_one_clear_line(secure_broker, pki, make_sink):
    sink = make_sink(tls_settings(secure_broker, pki, str(pki / "password"), ca="other-ca.crt"))
    with pytest.raises(EmopiError) as err:
        sink.wait_connected(3)
    message = str(err.value)
    assert not sink.refused  # maybe a transient problem: keep retrying
    assert "\n" not in message and "TLS certificate verification failed" in message
    assert "ca_file" in message


def test_listen_over_tls_wrong_password_is_one_line(secure_broker, pki):
    args = [
        sys.executable, "-m", "emopi.edge.cli", "listen", "--port", str(secure_broker.port),
        "--tls-ca", str(pki / "ca.crt"), "--tls-cert", str(pki / "client.crt"),
        "--tls-key", str(pki / "client.key"), "--username", USER,
        "--password-file", str(pki / "wrong-password"),
    ]  # fmt: skip
    res = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1
    assert "refused the connection" in res.stderr and "password_file" in res.stderr


def sink_log(caplog, level: int) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "emopi.edge.mqtt.sink" and r.levelno == level
    ]


@pytest.mark.parametrize("fault", ["unknown CA", "wrong password"])
def test_what_needs_a_person_is_one_error_not_one_per_retry(
    secure_broker, pki, make_sink, caplog, fault
):
    """Past the start-up window (connect_timeout 0 here) the sink logs its own failures: a
    certificate that fails verification or refused credentials is an ERROR, said once."""
    caplog.set_level(logging.DEBUG, logger="emopi.edge.mqtt.sink")
    if fault == "unknown CA":
        settings, expected = (
            tls_settings(secure_broker, pki, str(pki / "password"), ca="other-ca.crt"),
            "TLS certificate verification failed",
        )
    else:
        settings, expected = (
            tls_settings(secure_broker, pki, str(pki / "wrong-password")),
            "refused the connection",
        )
    make_sink(dataclasses.replace(settings, connect_timeout=0.0))
    wait_until(lambda: sink_log(caplog, logging.DEBUG), timeout=20)  # a retry, said quietly
    errors = sink_log(caplog, logging.ERROR)
    assert len(errors) == 1 and expected in errors[0]
    assert all(expected in line for line in sink_log(caplog, logging.DEBUG))
    assert sink_log(caplog, logging.WARNING) == []


def test_emopi_run_says_error_for_a_certificate_it_cannot_verify(secure_broker, pki, tmp_path):
    """At start-up `emopi run` reports the first failure itself: a TLS verification failure
    is an ERROR (a person must fix ca_file), yet it runs on and spools (the clock may be off)."""
    config = write_config(
        tmp_path / "emopi.toml",
        {"device_id": "tls-run", "state_dir": str(tmp_path / "state")},
        mqtt={"host": "127.0.0.1", "port": secure_broker.port, "connect_timeout": 1.0},
        **{"mqtt.tls": {"ca_file": str(pki / "other-ca.crt")}},
    )
    result = run_cli("run", "--config", str(config), "--source", "demo", "--max-frames", "3")
    assert result.returncode == 0, result.stderr
    errors = [ln for ln in result.stderr.splitlines() if " ERROR " in ln]
    assert len(errors) == 1 and "TLS certificate verification failed" in errors[0]
    assert "running on: events are spooled" in errors[0]
