"""`emopi study depth`: two depths x one epoch on tiny synthetic data, then a resumed rerun."""

from __future__ import annotations

import json
import shutil

import pytest

from emopi.edge.cli import main
from emopi.edge.errors import EmopiError
from emopi.train import study
from emopi.train.study import parse_depths


def study_args(npz, out, *extra):
    return [
        "study",
        "depth",
        "--data",
        str(npz),
        "--epochs",
        "1",
        "--depths",
        "3,4",
        "--batch-size",
        "32",
        "--out",
        str(out),
        *extra,
    ]


@pytest.fixture(scope="module")
def finished(npz, tmp_path_factory):
    """A study of depths 3 and 4, one epoch each."""
    out = tmp_path_factory.mktemp("study") / "study"
    assert main(study_args(npz, out)) == 0
    return out


def test_depth_study_table_and_rerun_skips_finished_depths(finished, npz, monkeypatch, capsys):
    out = finished
    table = json.loads((out / "study.json").read_text())
    assert [r["depth"] for r in table["results"]] == [3, 4]
    assert table["val_images"] == 42 and table["epochs"] == 1
    assert table["reference"] == {"depth": 6, "epochs": 15, "accuracy": 0.48, "macro_f1": 0.47}
    for r in table["results"]:
        assert r["arch"] == f"cnn-depth{r['depth']}" and r["epochs_run"] == 1
        assert 0.0 <= r["macro_f1"] <= 1.0 and 0.0 <= r["weighted_f1"] <= 1.0
        finished = json.loads((out / r["arch"] / "metrics.json").read_text())
        assert r["accuracy"] == pytest.approx(finished["accuracy"])  # same model, same val
    assert table["results"][0]["params"] != table["results"][1]["params"]
    md = (out / "study.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| conv layers | params |")
    assert rows[1].startswith("| 3 | ") and rows[2].startswith("| 4 | ")
    assert rows[3].startswith("| 6 (research) |") and "≈0.48" in rows[3] and "≈0.47" in rows[3]
    assert (out / "study.png").stat().st_size > 10_000

    def no_training(*_args, **_kw):
        raise AssertionError("a finished depth was trained again")

    monkeypatch.setattr(study, "train", no_training)
    (out / "study.json").unlink()
    assert main(study_args(npz, out)) == 0  # both depths finished: only the table is rebuilt
    again = json.loads((out / "study.json").read_text())
    assert again["results"] == table["results"]
    assert "| conv layers |" in capsys.readouterr().out  # the table is printed too


def test_an_unfinished_depth_resumes_with_its_own_config(finished, npz, tmp_path, monkeypatch):
    out = shutil.copytree(finished, tmp_path / "study")
    metrics = out / "cnn-depth4" / "metrics.json"
    saved = metrics.read_text()
    metrics.unlink()  # as if killed before the end: config.json and checkpoints remain
    resumed = []

    def fake_train(cfg, run, verbose):  # stands in for the real resume (tested in test_fit)
        resumed.append((cfg.arch, cfg.epochs, run))
        metrics.write_text(saved)

    monkeypatch.setattr(study, "train", fake_train)
    assert main(study_args(npz, out)) == 0
    assert resumed == [("cnn-depth4", 1, out / "cnn-depth4")]
    assert len(json.loads((out / "study.json").read_text())["results"]) == 2


def test_a_study_folder_with_other_settings_is_refused(npz, tmp_path, capsys):
    out = tmp_path / "study"
    (out / "cnn-depth3").mkdir(parents=True)
    (out / "cnn-depth3" / "config.json").write_text(
        json.dumps({"data": str(npz), "arch": "cnn-depth3", "epochs": 7, "seed": 1234})
    )
    assert main(study_args(npz, out, "--depths", "3")) == 2
    err = capsys.readouterr().err
    assert "was started with epochs=7, not 1; use another --out" in err
    assert not (out / "study.json").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [("3,x", "not a comma-separated list"), ("2,3", "choose among 3,4,5,6"), ("", "choose")],
)
def test_bad_depths(text, message):
    with pytest.raises(EmopiError, match=message):
        parse_depths(text)


def test_missing_data_is_one_line(capsys):
    assert main(["study", "depth"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == "emopi study: error: pass --data DATA (a fer2013.csv, a class-folder tree or an .npz)"
    )
