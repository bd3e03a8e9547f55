"""`emopi study depth`: two depths x one epoch on tiny synthetic data, then a resumed rerun."""

from __future__ import annotations

import json
import shutil

import pytest

from emopi.edge.cli import main
from emopi.edge.errors import EmopiError
from emopi.train import study
from emopi.train.study import parse_depths, parse_settings


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


def test_depth_study_tables_in_the_research_format_and_rerun_skips_finished(
    finished, npz, monkeypatch, capsys
):
    out = finished
    table = json.loads((out / "study.json").read_text())
    got = [(r["setting"], r["depth"], r["arch"]) for r in table["results"]]
    assert got == [
        ("plain", 3, "cnn-depth3"),
        ("plain", 4, "cnn-depth4"),
        ("recipe", 3, "cnn-depth3-bn"),
        ("recipe", 4, "cnn-depth4-bn"),
    ]
    assert table["val_images"] == 42 and table["epochs"] == 1
    for r in table["results"]:
        run = out / r["setting"] / r["arch"]
        finished_metrics = json.loads((run / "metrics.json").read_text())
        assert r["accuracy"] == pytest.approx(finished_metrics["accuracy"])  # same model, same val
        assert r["epochs_run"] == 1 and r["ms_per_face_int8"] > 0
        config = json.loads((run / "config.json").read_text())
        plain = r["setting"] == "plain"
        assert config["augment"]["enabled"] is not plain
        assert config["optimizer"] == ("adam" if plain else "sgd")
    by_arch = {r["arch"]: r for r in table["results"]}
    assert by_arch["cnn-depth4"]["mult_adds"] > by_arch["cnn-depth3"]["mult_adds"]
    assert by_arch["cnn-depth3-bn"]["params"] > by_arch["cnn-depth3"]["params"]  # BatchNorm
    md = (out / "study.md").read_text()
    assert "## Macro averages" in md and "## Weighted averages" in md and "## Cost" in md
    rows = [line for line in md.splitlines() if line.startswith("| 3 | ")]
    assert rows[0] == "| 3 | research | 0.47 | 0.53 | 0.56 | 0.46 |"  # macro table first
    assert rows[1].startswith("| 3 | emopi, plain | ") and rows[2].startswith(
        "| 3 | emopi, recipe |"
    )
    assert "| 3 | research | 0.47 | 0.61 | 0.47 | 0.51 |" in md  # the weighted table
    assert (out / "study.png").stat().st_size > 10_000

    def no_training(*_args, **_kw):
        raise AssertionError("a finished depth was trained again")

    monkeypatch.setattr(study, "train", no_training)
    (out / "study.json").unlink()
    assert main(study_args(npz, out)) == 0  # every run finished: only the tables are rebuilt
    again = json.loads((out / "study.json").read_text())
    assert again["results"] == table["results"]
    assert "| conv layers | trained |" in capsys.readouterr().out  # the tables are printed too


def test_an_unfinished_depth_resumes_with_its_own_config(finished, npz, tmp_path, monkeypatch):
    out = shutil.copytree(finished, tmp_path / "study")
    metrics = out / "plain" / "cnn-depth4" / "metrics.json"
    saved = metrics.read_text()
    metrics.unlink()  # as if killed before the end: config.json and checkpoints remain
    resumed = []

    def fake_train(cfg, run, verbose):  # stands in for the real resume (tested in test_fit)
        resumed.append((cfg.arch, cfg.epochs, run))
        metrics.write_text(saved)

    monkeypatch.setattr(study, "train", fake_train)
    assert main(study_args(npz, out)) == 0
    assert resumed == [("cnn-depth4", 1, out / "plain" / "cnn-depth4")]
    assert len(json.loads((out / "study.json").read_text())["results"]) == 4


def test_a_study_folder_with_other_settings_is_refused(npz, tmp_path, capsys):
    out = tmp_path / "study"
    (out / "plain" / "cnn-depth3").mkdir(parents=True)
    (out / "plain" / "cnn-depth3" / "config.json").write_text(
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


def test_bad_settings():
    with pytest.raises(EmopiError, match="--settings 'plain,fancy': choose among plain,recipe"):
        parse_settings("plain,fancy")


def test_missing_data_is_one_line(capsys):
    assert main(["study", "depth"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == "emopi study: error: pass --data DATA (a fer2013.csv, a class-folder tree or an .npz)"
    )
