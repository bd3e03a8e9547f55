"""`emopi card`: the shipped models' table and cost plot come from their parity reports."""

from __future__ import annotations

import shutil

import pytest

from emopi.edge.cli import main
from emopi.edge.errors import EmopiError


def test_card_tables_and_plots_each_shipped_model(tiny_int8_model, tmp_path, monkeypatch):
    import emopi.edge.models as shipped

    small = tmp_path / "small.tflite"
    for source, target in (
        (tiny_int8_model, small),
        (tiny_int8_model.with_suffix(".json"), small.with_suffix(".json")),
        (tiny_int8_model.with_name("tiny-int8-parity.json"), tmp_path / "small-parity.json"),
    ):
        shutil.copy(source, target)
    monkeypatch.setitem(shipped.SHIPPED_MODELS, "default", tiny_int8_model)
    monkeypatch.setitem(shipped.SHIPPED_MODELS, "small", small)
    assert main(["card", "--out", str(tmp_path / "card")]) == 0
    rows = (tmp_path / "card" / "models.md").read_text().splitlines()
    assert [row.split("|")[1].strip() for row in rows[2:]] == ["`default`", "`small`"]
    assert "| tiny |" in rows[2] and " M |" in rows[2]
    assert all(float(row.split("|")[-2]) > 0 for row in rows[2:])  # ms per face, measured
    assert (tmp_path / "card" / "cost-accuracy.png").stat().st_size > 10_000


def test_card_needs_parity_reports(tmp_path, monkeypatch):
    import emopi.train.card as card

    lone = tmp_path / "lone.tflite"
    lone.write_bytes(b"x")
    with pytest.raises(EmopiError, match=r"lone\.tflite has no parity report lone-parity\.json"):
        card.table({"default": lone}, {"default": 1.0})
