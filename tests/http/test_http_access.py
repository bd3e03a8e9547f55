"""Who may see the view: the token rules, and one clear line for every bad --http or [http]."""

from __future__ import annotations

import os
import socket

import pytest
from helpers import run_cli
from httpkit import View

from emopi.edge.mqtt.broker import free_port

TOKEN = "kiosk-7f3a9c"


@pytest.mark.slow
def test_token_is_required_counted_and_accepted_as_header_or_query(tmp_path) -> None:
    config = tmp_path / "emopi.toml"
    config.write_text(f'[http]\ntoken = "{TOKEN}"\n')
    view = View("--source", "demo", env={"EMOPI_CONFIG": str(config)})
    try:
        view.wait_for(view.answers, what="the server")
        refused = [
            view.get("/api/state"),
            view.get("/", {"Authorization": "Bearer wrong"}),
            view.get("/stream.mjpg?token=wrong"),
            view.get(f"/api/events?token={TOKEN}x"),
        ]
        for resp in refused:
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
            assert "token" in resp.json()["error"]
        assert view.get("/healthz").status in (200, 503)  # probes need no token
        assert view.get("/static/app.js").status == 200  # code, no data
        assert view.get("/", {"Authorization": f"Bearer {TOKEN}"}).status == 200
        state = view.get(f"/api/state?token={TOKEN}").json()
        assert state["health"]["http_unauthorized"] == len(refused)
    finally:
        view.stop()
    assert "refused a request without the right token" in view.emopi.stderr()


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "value", ["abc", "0", "8080x", "127.0.0.1:", ":8080", "127.0.0.1:70000", "[::1]:-1"]
)
def test_bad_http_values_are_one_clear_line(value: str) -> None:
    result = run_cli("run", "--source", "demo", "--http", value, env={"EMOPI_CONFIG": os.devnull})
    assert result.returncode == 2
    assert last_line(result.stderr) == (
        "emopi run: error: argument --http: must be [HOST:]PORT with PORT 1..65535 "
        f"(8080, 127.0.0.1:8080), not {value!r}"
    )


def test_non_loopback_bind_needs_a_token() -> None:
    port = free_port()
    result = run_cli(
        "run", "--source", "demo", "--http", f"0.0.0.0:{port}", env={"EMOPI_CONFIG": os.devnull}
    )
    assert result.returncode == 2
    assert last_line(result.stderr) == (
        "emopi run: error: --http must be a loopback address unless [http] token "
        "(or $EMOPI_HTTP_TOKEN) is set, not '0.0.0.0'"
    )


def test_config_names_the_file_for_a_non_loopback_host(tmp_path) -> None:
    config = tmp_path / "emopi.toml"
    config.write_text('[http]\nport = 8080\nhost = "kiosk.lan"\n')
    result = run_cli("run", "--source", "demo", "--config", str(config))
    assert result.returncode == 2
    assert last_line(result.stderr) == (
        f"emopi run: error: config {config}: [http] host must be a loopback address unless "
        "[http] token (or $EMOPI_HTTP_TOKEN) is set, not 'kiosk.lan'"
    )


def test_a_taken_port_is_one_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli(
            "run", "--source", "demo", "--http", str(port), env={"EMOPI_CONFIG": os.devnull}
        )
    assert result.returncode == 2
    line = last_line(result.stderr)
    assert line.startswith(f"emopi run: error: cannot serve the HTTP view on 127.0.0.1:{port}: ")
    assert "address already in use" in line.lower()
