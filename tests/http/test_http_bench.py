"""`emopi bench --http`: the three modes run in turns and the report carries their fps.

Speed is never asserted here; only that the measurement is made as described.
"""

from __future__ import annotations

import json
import os

import pytest
from helpers import run_cli

ENV = {"EMOPI_CONFIG": os.devnull}


@pytest.mark.slow
def test_bench_http_measures_off_idle_and_one_viewer(tmp_path) -> None:
    out = tmp_path / "bench"
    result = run_cli(
        "bench", "--source", "demo", "--http", "--frames", "40", "--warmup", "5",
        "--broker", "none", "--out", str(out), env=ENV, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "bench.json").read_text())
    modes = [run["http"]["mode"] for run in report["runs"]]
    assert modes == ["off", "idle", "viewer"] * 3  # in turns, so load changes hit all alike
    for run in report["runs"]:
        sent = run["http"]["frames_sent"]
        assert (sent > 0) if run["http"]["mode"] == "viewer" else (sent == 0)
    cost = report["http_view"]
    assert set(cost["fps"]) == {"off", "idle", "viewer"}
    assert set(cost["loss_percent"]) == {"idle", "viewer"}
    assert all(len(values) == 3 for values in cost["rounds"].values())
    markdown = (out / "bench.md").read_text()
    assert "## HTTP view cost" in markdown and "http on, 1 viewer" in markdown


def test_bench_http_refuses_other_modes() -> None:
    result = run_cli("bench", "--source", "demo", "--http", "--sweep", "threads=1,2", env=ENV)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "emopi bench: error: use --http alone, without --compare or --sweep"
    )
