"""`emopi run --source demo --http 127.0.0.1:<port>`: the page, state, MJPEG, SSE, metrics.

One real `emopi run` serves the module (the bundled demo portrait, a real camera-like stream
at 30 fps); every request is real HTTP over loopback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import cv2
import numpy as np
import pytest
from helpers import make_mosquitto
from httpkit import ChunkedBody, View, mjpeg_frames, open_stream, sse_events
from relkit import BLINK, blink_folder, write_config

from emopi.edge.mqtt.broker import free_port

pytestmark = pytest.mark.slow

GREEN = np.array([0, 200, 0])  # BGR of a classified face's box (emopi.edge.service.draw)


@pytest.fixture(scope="module")
def demo() -> Iterator[View]:
    view = View("--source", "demo", "--metrics-port", str(free_port()))
    try:
        view.wait_for(lambda: view.answers() and view.state()["face_count"], what="a face")
        yield view
    finally:
        view.stop()


def green_pixels(image: np.ndarray) -> int:
    return int((np.abs(image.astype(int) - GREEN).sum(axis=2) < 60).sum())


def test_state_has_the_smoothed_face_timeline_and_health(demo: View) -> None:
    state = demo.state()
    (face,) = [f for f in state["faces"] if f["emotion"]]
    assert set(face["probs"]) == {
        "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"
    }  # fmt: skip
    assert sum(face["probs"].values()) == pytest.approx(1.0, abs=0.01)
    assert face["probs"][face["emotion"]] == pytest.approx(face["confidence"], abs=1e-3)
    assert all(0 <= v <= 1 for v in face["box"])
    assert state["dominant"] == face["emotion"]
    health = state["health"]
    assert health["ok"] and health["status"] == "ok" and health["camera"] == "up"
    assert health["fps"] > 0 and health["frames"] > 0
    assert {"detect", "classify", "publish"} <= set(health["stage_ms"])
    assert health["mqtt"] is None  # no broker configured: events go to stdout
    assert "cpu_temp_c" in health and "throttling" in health
    points = len(state["timeline"])
    grown = demo.wait_for(lambda: len(demo.state()["timeline"]) > points, what="a new point")
    assert grown
    assert demo.get("/healthz").status == 200


def test_page_and_assets_are_served_from_the_package(demo: View) -> None:
    page = demo.get("/")
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    html = page.body.decode()
    assert 'src="static/app.js"' in html and "http" + "s://" not in html  # nothing from a CDN
    for asset, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
        resp = demo.get(f"/static/{asset}")
        assert resp.status == 200 and resp.headers["Content-Type"].startswith(kind)
    assert demo.get("/static/../live.py").status == 404


def test_mjpeg_frames_are_capped_and_show_the_box(demo: View) -> None:
    sock = open_stream(demo.port, "/stream.mjpg")
    try:
        body = ChunkedBody(sock)
        assert body.head[":status"].split()[1] == "200"
        assert body.head["content-type"].startswith("multipart/x-mixed-replace")
        frames = mjpeg_frames(body)
        images = [cv2.imdecode(np.frombuffer(next(frames), np.uint8), 1) for _ in range(3)]
        assert demo.state()["health"]["viewers"] == 1
    finally:
        sock.close()
    for image in images:
        assert image is not None and image.shape[1] <= 640
    assert max(green_pixels(image) for image in images) > 200  # the face box and its label
    demo.wait_for(lambda: demo.state()["health"]["viewers"] == 0, what="the viewer to leave")


def test_a_foreign_host_name_is_refused_on_loopback(demo: View) -> None:
    """DNS rebinding: a page elsewhere must not read the view through a local browser."""
    resp = demo.get("/api/state", {"Host": "attacker.example"})
    assert resp.status == 403 and "not loopback" in resp.json()["error"]
    for host in ("localhost", "[::1]", f"127.0.0.1:{demo.port}", f"[::1]:{demo.port}"):
        assert demo.get("/api/state", {"Host": host}).status == 200


def test_prometheus_metrics_on_the_same_port(demo: View) -> None:
    resp = demo.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    assert "emopi_frames_total" in resp.body.decode()


def test_sse_replays_kept_events_as_the_mqtt_json(demo: View) -> None:
    sock = open_stream(demo.port, "/api/events?since=0")
    try:
        body = ChunkedBody(sock)
        assert body.head["content-type"].startswith("text/event-stream")
        event_id, data = next(sse_events(body))
    finally:
        sock.close()
    assert event_id.endswith(":1")  # EPOCH:N, so a restarted emopi is not taken for this one
    assert data == demo.emopi.out[0]  # byte for byte the line `emopi run` printed (MQTT JSON)
    assert json.loads(data)["type"] == "new"


def test_sse_delivers_events_as_they_happen(tmp_path) -> None:
    """A face that comes and goes: events arrive on a stream opened before they happen."""
    folder = blink_folder(tmp_path / "blink")
    config = write_config(tmp_path / "emopi.toml", **BLINK)
    view = View("--source", str(folder), env={"EMOPI_CONFIG": str(config)})
    try:
        view.wait_for(view.answers, what="the server")
        sock = open_stream(view.port, "/api/events")
        body = ChunkedBody(sock)
        seen_before = len(view.emopi.events())
        received = []
        for event_id, data in sse_events(body):
            received.append((int(event_id.split(":")[1]), json.loads(data)))
            if len(received) == 3:
                break
        sock.close()
    finally:
        view.stop()
    printed = [json.loads(line) for line in view.emopi.out if line.startswith("{")]
    assert [e["seq"] for _, e in received] == sorted(e["seq"] for _, e in received)
    for _, event in received:
        assert event in printed  # the same events as stdout / MQTT
        assert event["seq"] > seen_before  # happened after the stream opened
    assert {e["type"] for _, e in received} <= {"new", "update", "end"}
    assert len({e["type"] for _, e in received}) >= 2  # faces came and went while we listened


def test_video_off_keeps_the_page_and_drops_the_picture(tmp_path) -> None:
    config = tmp_path / "emopi.toml"
    config.write_text("[http]\nvideo = false\n")
    view = View("--source", "demo", env={"EMOPI_CONFIG": str(config)})
    try:
        view.wait_for(lambda: view.answers() and view.state()["face_count"], what="a face")
        assert view.state()["video"] is False
        resp = view.get("/stream.mjpg")
        assert resp.status == 404 and b"video = false" in resp.body
        assert view.get("/").status == 200
    finally:
        view.stop()


def test_health_follows_the_mqtt_broker(tmp_path) -> None:
    broker = make_mosquitto(tmp_path)
    view = View(
        "--source", "demo", "--mqtt-host", broker.host, "--mqtt-port", str(broker.port),
        env={"EMOPI_STATE_DIR": str(tmp_path / "state")},
    )  # fmt: skip
    try:
        mqtt = view.wait_for(
            lambda: (
                view.answers()
                and (m := view.state()["health"]["mqtt"])["events_published"] >= 1
                and m
            ),
            what="an event published to mosquitto",
        )
        assert mqtt["broker_connected"] is True and mqtt["spool_depth"] == 0
        broker.stop()
        view.wait_for(
            lambda: view.state()["health"]["mqtt"]["broker_connected"] is False,
            what="the broker to be seen gone",
        )
        assert view.get("/healthz").status == 200  # frames still flow: MQTT is not the loop
    finally:
        view.stop()
        broker.stop()
