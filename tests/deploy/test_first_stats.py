"""The stats report at the end of `emopi deploy`: on the Pi, the first `<prefix>/stats` message
of the device, read from a real mosquitto."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import free_port

paho = pytest.importorskip("paho.mqtt.client")

from emopi.tools.deploy import wait_first_stats  # noqa: E402


@pytest.fixture
def config(tmp_path: Path, mosquitto) -> Path:
    path = tmp_path / "emopi.toml"
    path.write_text(
        f'device_id = "testpi"\n[mqtt]\nhost = "{mosquitto.host}"\nport = {mosquitto.port}\n'
        'protocol = "3.1.1"\n'
    )
    return path


@pytest.fixture
def publisher(mosquitto) -> Iterator[None]:
    """Publishes a stats message every 0.1 s, as a running `emopi run` would every 30 s."""
    stop = threading.Event()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="fake-emopi-run")
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()

    def loop() -> None:
        while not stop.wait(0.1):
            client.publish("emopi/testpi/stats", json.dumps({"fps": 14.5, "spool": 0}))

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join()
    client.loop_stop()
    client.disconnect()


def test_prints_the_first_stats_message(config, publisher, capsys):
    assert wait_first_stats(str(config), timeout=10) == 0
    line = capsys.readouterr().out.strip()
    topic, _, payload = line.partition(": ")
    assert topic == "emopi/testpi/stats"
    assert json.loads(payload) == {"fps": 14.5, "spool": 0}


def test_says_so_when_no_stats_arrive(config, capsys):
    assert wait_first_stats(str(config), timeout=0.5) == 1
    assert "no message on emopi/testpi/stats within" in capsys.readouterr().out


def test_unreachable_broker_is_one_line(tmp_path, capsys):
    path = tmp_path / "emopi.toml"
    path.write_text(f'[mqtt]\nhost = "127.0.0.1"\nport = {free_port()}\n')
    assert wait_first_stats(str(path), timeout=1) == 1
    out = capsys.readouterr().out.strip()
    assert out.startswith("cannot connect to the MQTT broker 127.0.0.1:") and "\n" not in out
