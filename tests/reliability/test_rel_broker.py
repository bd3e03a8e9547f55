"""Broker faults with a real mosquitto and the real `emopi run`: down at start, restarted
during the run, connections cut and packets swallowed. Every event printed on stdout
(``--stdout``: what the pipeline emitted) reaches the subscriber, in order, after dropping
QoS-1 duplicates by ``(run_id, seq)``.
"""

from __future__ import annotations

from pathlib import Path

from mqtt_driver import dedup
from relkit import BLINK, Emopi, Proxy, keys, persistent, write_config

from emopi.edge.mqtt.spool import SPOOL_FILE, Spool

DEVICE = "rel-broker"
TOPIC = f"emopi/{DEVICE}/event"


def blink_config(tmp_path: Path, port: int, **mqtt) -> Path:
    return write_config(
        tmp_path / "emopi.toml",
        {"device_id": DEVICE, "state_dir": str(tmp_path / "state")},
        **BLINK,
        mqtt={"host": "127.0.0.1", "port": port, "connect_timeout": 1.0, **mqtt},
    )


def run_blink(config: Path, blink: Path) -> Emopi:
    return Emopi("run", "--config", str(config), "--source", str(blink), "--stdout")


def more_events(emopi: Emopi, count: int, timeout: float = 20) -> None:
    target = len(emopi.events()) + count
    emopi.wait_for(lambda: len(emopi.events()) >= target, timeout, f"{count} more events")


def outage_ends(stderr: str) -> list[str]:
    """The outages that ended: their one INFO line each."""
    return [
        ln for ln in stderr.splitlines() if " INFO " in ln and " back after an outage of " in ln
    ]


def spool_depth(tmp_path: Path) -> int:
    spool = Spool(tmp_path / "state" / SPOOL_FILE)
    try:
        return spool.depth
    finally:
        spool.close()


def test_down_at_start_then_restarted_three_times(own_mosquitto, tmp_path, blink, subscribe):
    broker = own_mosquitto
    persistent(broker, tmp_path)
    sub = subscribe(broker.port, TOPIC, client_id="rel-sub-restarts", persistent=True)
    broker.stop()

    emopi = run_blink(blink_config(tmp_path, broker.port), blink)
    try:
        # Down at start: one warning, then it runs on and spools.
        emopi.wait_for(lambda: "events are spooled" in emopi.stderr(), 20, "the spool warning")
        more_events(emopi, 6)
        assert sub.on(TOPIC) == []
        broker.start()
        sub.wait_for(lambda: len(sub.on(TOPIC)) >= 6, timeout=20)
        for restart in range(1, 4):  # restarted three times while events keep coming
            more_events(emopi, 4)
            broker.stop()
            more_events(emopi, 4)  # produced while the broker is away
            broker.start()
            # Back and drained before the next stop: on a loaded machine the reconnect can
            # take longer than four events, and two restarts would then be one outage.
            emopi.wait_for(
                lambda n=restart: len(outage_ends(emopi.stderr())) >= n, 30, "the outage's end"
            )
        more_events(emopi, 4)
    finally:
        code = emopi.stop()
    assert code == 0, emopi.stderr()
    sent = keys(emopi.events())
    assert len(sent) >= 34  # what the waits above guarantee (6 + 3 x 8 + 4)
    sub.wait_for(lambda: len(dedup(sub.on(TOPIC))) >= len(sent), timeout=30)
    assert dedup(sub.on(TOPIC)) == sent  # nothing lost, nothing reordered
    assert spool_depth(tmp_path) == 0  # and everything acknowledged before it exited
    stderr = emopi.stderr()
    assert "Traceback" not in stderr
    # Levels that match what the operator must do: a broker that restarts needs nobody.
    lines = stderr.splitlines()
    assert [ln for ln in lines if " ERROR " in ln] == []
    warnings = [ln for ln in lines if " WARNING " in ln]
    assert len(warnings) == 4, warnings  # down at start, then one per restart
    assert "connection refused (is the broker running on that port?)" in warnings[0]
    assert sum("lost MQTT broker" in ln for ln in warnings) == 3
    backs = outage_ends(stderr)
    assert len(backs) == 3 and all(ln.endswith(" spooled events sent") for ln in backs)


def test_cut_connections_and_lost_packets(mosquitto, tmp_path, blink, subscribe):
    proxy = Proxy(mosquitto.port)
    sub = subscribe(mosquitto.port, TOPIC)  # straight to the broker: sees what got through
    emopi = run_blink(blink_config(tmp_path, proxy.port, keepalive=5), blink)
    try:
        emopi.wait_for(lambda: sub.on(TOPIC), 30, "first event at the broker")

        def reconnected(count: int) -> None:
            emopi.wait_for(lambda: proxy.accepted > count, 20, "emopi to reconnect")
            more_events(emopi, 3)

        for _ in range(2):
            count = proxy.accepted
            proxy.cut()  # connection reset
            more_events(emopi, 2)  # spooled meanwhile
            reconnected(count)
        for _ in range(2):
            proxy.blackhole = True  # packets vanish: publishes and acks are lost...
            more_events(emopi, 4)
            count = proxy.accepted
            proxy.cut()  # ...until the link is declared dead
            proxy.blackhole = False
            reconnected(count)
    finally:
        code = emopi.stop()
        proxy.close()
    assert code == 0, emopi.stderr()
    assert proxy.cuts == 4
    sent = keys(emopi.events())
    sub.wait_for(lambda: len(dedup(sub.on(TOPIC))) >= len(sent), timeout=30)
    assert dedup(sub.on(TOPIC)) == sent
    assert spool_depth(tmp_path) == 0
    assert "Traceback" not in emopi.stderr()


def test_spooled_events_of_a_stopped_run_go_first_at_the_next_start(
    own_mosquitto, tmp_path, blink, subscribe
):
    broker = own_mosquitto
    broker.stop()
    config = blink_config(tmp_path, broker.port)
    first = run_blink(config, blink)
    try:
        more_events(first, 8)
    finally:
        assert first.stop() == 0, first.stderr()
    assert "stay spooled for the next start" in first.stderr()
    assert spool_depth(tmp_path) == len(first.events())

    broker.start()
    sub = subscribe(broker.port, TOPIC)
    second = run_blink(config, blink)
    try:
        more_events(second, 4)
        # the backlog of the first run went out before the second run's own events
        sub.wait_for(lambda: len(dedup(sub.on(TOPIC))) > len(first.events()), timeout=30)
    finally:
        assert second.stop() == 0, second.stderr()
    sent = keys(first.events()) + keys(second.events())
    sub.wait_for(lambda: len(dedup(sub.on(TOPIC))) >= len(sent), timeout=30)
    assert dedup(sub.on(TOPIC)) == sent
