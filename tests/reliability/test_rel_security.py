"""Security through the real `emopi run`: the MQTT password never shows (logs at --debug,
stats, any MQTT message, /metrics); world-readable secrets are warned about; the only
subscription is homeassistant/status, whose payload is checked; /metrics is on loopback."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from helpers import Mosquitto, free_port, run_cli
from mqtt_driver import wait_until
from paho.mqtt.enums import CallbackAPIVersion
from relkit import Emopi, write_config

USER, PASSWORD = "emopi", "Tr0ub4dor&3-never-shown"
DEVICE = "sec-test"


@pytest.fixture
def logged_broker(tmp_path: Path) -> Mosquitto:
    """A mosquitto with password auth that logs every SUBSCRIBE to a file."""
    passwd = tmp_path / "passwd"
    binary = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    subprocess.run([binary, "-b", "-c", str(passwd), USER, PASSWORD], check=True)
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {passwd}\n"
        f"persistence false\nuser root\nlog_dest file {tmp_path / 'broker.log'}\n"
        "log_type subscribe\nlog_type notice\n"
    )
    broker = Mosquitto(conf, port)
    broker.start()
    yield broker
    broker.stop()


class Recorder:
    """Every message on the broker (authenticated like emopi)."""

    def __init__(self, port: int) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="sec-recorder")
        self.client.username_pw_set(USER, PASSWORD)
        self.client.on_connect = lambda c, *_: c.subscribe("#", qos=1)
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = lambda _c, _u, m: self.messages.append((m.topic, m.payload))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.ready.wait(10)

    def topics(self, suffix: str) -> list[bytes]:
        return [p for t, p in list(self.messages) if t.endswith(suffix)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def listening_address(port: int) -> str:
    """The local address a TCP socket listens on for ``port`` (from /proc/net/tcp)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                return address
    raise AssertionError(f"nothing listens on port {port}")


def test_secrets_subscriptions_and_metrics(logged_broker, tmp_path):
    secret = tmp_path / "mqtt.pass"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)
    metrics_port = free_port()
    config = write_config(
        tmp_path / "emopi.toml",
        {"device_id": DEVICE, "state_dir": str(tmp_path / "state")},
        metrics={"port": metrics_port},
        mqtt={
            "host": "127.0.0.1",
            "port": logged_broker.port,
            "username": USER,
            "password_file": str(secret),
            "stats_interval": 0.5,
        },
    )
    config.chmod(0o640)
    recorder = Recorder(logged_broker.port)
    emopi = Emopi("--debug", "run", "--config", str(config), "--source", "demo", "--stdout")
    try:
        emopi.wait_for(lambda: recorder.topics("/stats"), 30, "stats on MQTT")
        emopi.wait_for(lambda: recorder.topics("/config"), 10, "discovery configs")
        configs = len(recorder.topics("/config"))
        # Nobody can command emopi over MQTT, and junk on its one subscription is ignored.
        for payload in (b"\x00\xff" * 40000, b"online\n", b"ONLINE", b'{"online":1}', b""):
            recorder.client.publish("homeassistant/status", payload, qos=1)
        for topic in (f"emopi/{DEVICE}/set", f"emopi/{DEVICE}/command", f"emopi/{DEVICE}/stop"):
            recorder.client.publish(topic, b"stop", qos=1)
        # The sentinel: HA restarted ("online" after the junk). emopi reads its subscription
        # in order; the count is checked once its `offline` on exit has arrived (below).
        recorder.client.publish("homeassistant/status", b"online", qos=1)
        emopi.wait_for(
            lambda: len(recorder.topics("/config")) >= configs + 3, 10, "discovery republished"
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
            metrics = r.read().decode()
        address = listening_address(metrics_port)
    finally:
        code = emopi.stop()
        status = f"emopi/{DEVICE}/status"
        with contextlib.suppress(AssertionError):  # asserted below, after the cleanup
            wait_until(lambda: recorder.topics(status)[-1:] == [b"offline"])
        recorder.close()
    assert code == 0, emopi.stderr()
    assert recorder.topics(status)[-1:] == [b"offline"]  # emopi's last word has arrived
    assert len(recorder.topics("/config")) == configs + 3  # the sentinel's; none for the junk
    stderr = emopi.stderr()
    assert "DEBUG" in stderr  # the most talkative level was on
    assert "Traceback" not in stderr and "readable by every user" not in stderr
    everything = [stderr, "\n".join(emopi.out), metrics]
    everything += [payload.decode(errors="replace") for _, payload in recorder.messages]
    assert all(PASSWORD not in text for text in everything)
    assert "emopi_frames_total" in metrics
    assert address == "0100007F"  # 127.0.0.1: other machines cannot scrape it by default

    log = (tmp_path / "broker.log").read_text().splitlines()
    # Subscription lines read "<time>: <client id> <qos> <topic filter>".
    subscriptions = [ln.split()[1:] for ln in log if ln.split()[1:2] == [f"emopi-{DEVICE}"]]
    assert subscriptions == [[f"emopi-{DEVICE}", "1", "homeassistant/status"]]


@pytest.mark.parametrize("mode", [0o644, 0o640])
def test_world_readable_secrets_are_warned_about(tmp_path, mode):
    secret = tmp_path / "mqtt.pass"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(mode)
    config = write_config(
        tmp_path / "emopi.toml",
        {"state_dir": str(tmp_path / "state")},
        mqtt={"host": "127.0.0.1", "port": free_port(), "username": USER,
              "password_file": str(secret), "connect_timeout": 0.0},
    )  # fmt: skip
    config.chmod(mode)
    result = run_cli("run", "--config", str(config), "--source", "demo", "--max-frames", "2")
    assert result.returncode == 0, result.stderr
    warnings = [ln for ln in result.stderr.splitlines() if "readable by every user" in ln]
    if mode & 0o004:
        assert len(warnings) == 2
        assert f"config {config} is readable by every user (mode 0644)" in warnings[0]
        assert f"[mqtt] password_file {secret} is readable by every user" in warnings[1]
        assert "chmod o-rwx" in warnings[1]
    else:
        assert warnings == []
    assert PASSWORD not in result.stderr


def test_metrics_host_is_what_the_config_says(tmp_path):
    """The loopback default above is a choice: the address does follow the config."""
    port = free_port()
    emopi = Emopi(
        "run", "--source", "demo", "--metrics-port", str(port),
        env={"EMOPI_CONFIG": "/dev/null", "EMOPI_METRICS_HOST": "0.0.0.0"},
    )  # fmt: skip
    try:
        emopi.wait_for(lambda: "running:" in emopi.stderr(), 30, "the run to start")
        address = listening_address(port)
    finally:
        assert emopi.stop() == 0
    assert address == "00000000"
