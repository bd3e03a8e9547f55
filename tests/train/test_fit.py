"""Training runs: run-folder contents, resume after an interruption, CLI errors."""

from __future__ import annotations

import csv
import json

import pytest
from helpers import run_cli

from emopi.train import fit
from emopi.train.fit import TrainConfig, new_run_dir, train


def config(npz, tmp_path, **kw):
    return TrainConfig(
        data=str(npz),
        arch="mini-xception",
        out=str(tmp_path),
        batch_size=70,
        cache_dir=str(tmp_path / "cache"),
        **kw,
    )


def history_epochs(run):
    with (run / "history.csv").open() as fh:
        return [int(row["epoch"]) for row in csv.DictReader(fh)]


def test_run_folder_holds_config_versions_data_history_and_model(npz, tmp_path):
    cfg = config(npz, tmp_path, epochs=1, name="one")
    run = new_run_dir(cfg)
    metrics = train(cfg, run, verbose=0)
    for name in (
        "config.json",
        "versions.json",
        "data.json",
        "history.csv",
        "train.log",
        "best.keras",
        "last.keras",
        "metrics.json",
    ):
        assert (run / name).is_file(), name
    assert json.loads((run / "config.json").read_text())["arch"] == "mini-xception"
    assert json.loads((run / "data.json").read_text())["train"]["images"] == 140
    versions = json.loads((run / "versions.json").read_text())
    assert versions["backend"] == "tensorflow" and versions["device"] == "cpu"
    recall = metrics["per_class_recall"]
    assert set(recall) >= {"disgust"}
    # the 42 val faces are 6 per class: accuracy is the mean recall, in steps of 1/42
    assert metrics["accuracy"] == pytest.approx(sum(recall.values()) / len(recall))
    assert metrics["accuracy"] * 42 == pytest.approx(round(metrics["accuracy"] * 42))
    assert "epoch 1/1" in (run / "train.log").read_text()
    with pytest.raises(Exception, match="already exists; pass --resume"):
        new_run_dir(cfg)


def test_resume_continues_after_an_interruption(npz, tmp_path, monkeypatch):
    import keras

    class Crash(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt  # the session is cut off mid-run

    original = fit._callbacks
    monkeypatch.setattr(fit, "_callbacks", lambda *args: [*original(*args), Crash()])
    cfg = config(npz, tmp_path, epochs=3, name="resumable", patience=0)
    run = new_run_dir(cfg)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, run, verbose=0)
    assert history_epochs(run) == [0, 1]
    monkeypatch.setattr(fit, "_callbacks", original)
    train(TrainConfig.from_json(run / "config.json"), run, verbose=0)
    assert history_epochs(run) == [0, 1, 2]  # resumed at epoch 2, nothing repeated


def test_cli_bad_data_is_one_line(tmp_path):
    out = run_cli("train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path))
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == (
        f"emopi train: error: data {tmp_path / 'missing'} does not exist"
    )
    assert "Traceback" not in out.stderr


def test_cli_resume_of_non_run_folder(tmp_path):
    out = run_cli("train", "--resume", str(tmp_path))
    assert out.returncode == 2 and "is not a run folder" in out.stderr


def test_warm_start_copies_weights_and_refuses_another_architecture(tmp_path):
    import numpy as np

    from emopi.edge.errors import EmopiError
    from emopi.train.models import build

    def same(a, b) -> bool:
        pairs = zip(a.get_weights(), b.get_weights(), strict=True)
        return all(np.array_equal(x, y) for x, y in pairs)

    source = build("mini-xception")
    path = tmp_path / "source.keras"
    source.save(path)
    target = build("mini-xception")
    assert not same(source, target)
    fit._warm_start(target, path)
    assert same(source, target)
    with pytest.raises(EmopiError, match="'mini-xception' does not match 'cnn-depth3'"):
        fit._warm_start(build("cnn-depth3"), path)
    with pytest.raises(EmopiError, match=r"missing\.keras: not a \.keras model file"):
        fit._warm_start(target, tmp_path / "missing.keras")
