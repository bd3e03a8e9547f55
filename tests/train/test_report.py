"""`emopi evaluate` reports for .keras runs and .tflite models, on tiny synthetic data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tiny import synthetic_faces

from emopi.edge.cli import main
from emopi.edge.contract import LABELS
from emopi.edge.errors import EmopiError
from emopi.train.data import Faces, save_npz
from emopi.train.fit import TrainConfig, new_run_dir, train
from emopi.train.report import (
    classification_metrics,
    load_eval_model,
    most_confused,
    read_history,
    stratified_pick,
)

CORE_PNGS = ("confusion_counts", "confusion_normalized", "class_distribution")


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    x, y = synthetic_faces(210)
    xv, yv = synthetic_faces(70, seed=1)
    yv[:10] = (yv[:10] + 1) % len(LABELS)  # mislabelled faces: every report has mistakes
    path = tmp_path_factory.mktemp("data") / "synthetic.npz"
    return save_npz(path, {"train": Faces(x, y, "synthetic"), "val": Faces(xv, yv, "synthetic")})


@pytest.fixture(scope="module")
def run(npz, tmp_path_factory):
    """A real run folder: 2 epochs of cnn-depth3, so the curves have two points."""
    out = tmp_path_factory.mktemp("runs")
    cfg = TrainConfig(
        data=str(npz),
        arch="cnn-depth3",
        out=str(out),
        name="tiny",
        epochs=2,
        batch_size=32,
        patience=0,
        cache_dir=str(out / "cache"),
    )
    run = new_run_dir(cfg)
    train(cfg, run, verbose=0)
    return run


def evaluate(*args: str) -> int:
    return main(["evaluate", *args])


def assert_png(path, min_side=300):
    import matplotlib.image

    assert path.is_file(), path
    image = matplotlib.image.imread(path)
    assert min(image.shape[:2]) >= min_side, (path, image.shape)
    assert image[..., :3].std() > 0.05, f"{path} is (nearly) blank"


def md_table_rows(md: str) -> dict[str, list[str]]:
    """Rows of the classification-report table: first cell -> the other cells."""
    section = md.split("## Classification report")[1].split("\n## ")[0]
    rows = {}
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith("| class"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def test_report_for_a_keras_run(run, npz, capsys):
    assert evaluate(str(run), "--data", str(npz)) == 0
    out = run / "report"  # the default for a run folder
    assert "accuracy" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert {
        "accuracy",
        "macro_f1",
        "weighted_f1",
        "classification_report",
        "confusion_matrix",
        "top_confusions",
        "most_confused",
        "saliency",
        "history",
        "figures",
    } <= set(report)
    assert report["model"]["kind"] == "keras" and report["model"]["architecture"] == "cnn-depth3"
    assert report["data"]["images"] == 70 and report["data"]["split"] == "val"
    counts = np.array(report["confusion_matrix"]["counts"])
    assert counts.shape == (7, 7) and counts.sum() == 70
    assert report["accuracy"] == pytest.approx(np.trace(counts) / 70)
    assert report["history"]["epochs"] == 2
    assert set(report["figures"]) == {*CORE_PNGS, "curves", "saliency", "most_confused"}
    for name in report["figures"]:
        assert_png(out / f"{name}.png")
    assert len(report["saliency"]["faces"]) == 16
    rows = md_table_rows((out / "report.md").read_text())
    for label in (*LABELS, "accuracy", "macro avg", "weighted avg"):
        assert label in rows, label
    assert rows["macro avg"][3] == "70" and rows["accuracy"][2] == f"{report['accuracy']:.2f}"
    assert rows["disgust"][3] == str(counts[1].sum())


def test_report_for_a_tflite_model_skips_saliency(tiny_int8_model, npz, tmp_path):
    out = tmp_path / "rep"
    assert evaluate(str(tiny_int8_model), "--data", str(npz), "--out", str(out)) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["model"]["kind"] == "tflite" and report["model"]["input_dtype"] == "int8"
    assert report["model"]["architecture"] == "tiny"  # from the sidecar
    assert report["accuracy"] > 0.5  # the tiny model learnt the synthetic blobs
    assert "skipped" in report["saliency"] and not (out / "saliency.png").exists()
    assert report["history"] is None and not (out / "curves.png").exists()
    for name in CORE_PNGS:
        assert_png(out / f"{name}.png")
    md = (out / "report.md").read_text()
    assert "Skipped: a .tflite model has no gradients" in md
    assert len(md_table_rows(md)) >= len(LABELS) + 3


def test_split_carved_out_of_train_when_data_has_no_val(tiny_int8_model, tmp_path):
    x, y = synthetic_faces(140)
    only_train = save_npz(tmp_path / "t.npz", {"train": Faces(x, y, "synthetic")})
    assert evaluate(str(tiny_int8_model), "--data", str(only_train), "--out", str(tmp_path)) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["data"]["images"] == 14 and "held-out" in report["data"]["source"]


def test_tree_without_split_folders_is_evaluated_whole(tiny_int8_model, tmp_path, capsys):
    import cv2

    x, y = synthetic_faces(35, seed=3)
    for i, (face, label) in enumerate(zip(x, y, strict=True)):
        (tmp_path / "faces" / LABELS[label]).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / "faces" / LABELS[label] / f"{i}.png"), face)
    out = tmp_path / "report"
    assert evaluate(str(tiny_int8_model), "--data", str(tmp_path / "faces"), "--out", str(out)) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["images"] == 35 and report["data"]["split"].startswith("all")
    assert "on 35 faces of split all (no split folders: every image)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.keras", "--data", "x.npz"], "model missing.keras does not exist"),
        (["{model}"], "pass --data DATA"),
        (["{txt}", "--data", "{npz}"], "is not a run folder, a .keras or a .tflite model"),
        (["{dir}", "--data", "{npz}"], "has no best.keras"),
        (["{model}", "--data", "{npz}", "--split", "test"], "no 'test' split (it has: train, val)"),
        (["{model}", "--data", "{dir}/nothing"], "does not exist"),
    ],
)
def test_bad_input_gives_one_line(
    args, message, tiny_int8_model, npz, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # the default report folder is ./report
    (tmp_path / "notes.txt").write_text("hi")
    names = {"model": tiny_int8_model, "txt": tmp_path / "notes.txt", "dir": tmp_path, "npz": npz}
    assert evaluate(*(a.format(**names) for a in args)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "report").exists()


def test_default_model_is_the_shipped_one_or_a_clear_error(monkeypatch, tmp_path):
    import emopi.edge.models as shipped

    default = load_eval_model(None)  # the shipped one, as it is in this tree
    assert default.path == shipped.SHIPPED_MODELS["default"] and default.kind == "tflite"
    assert default.predict(np.zeros((1, 48, 48), np.uint8)).shape == (1, 7)
    monkeypatch.setitem(shipped.SHIPPED_MODELS, "default", tmp_path / "absent.tflite")
    with pytest.raises(EmopiError, match=r"no shipped model at .*absent\.tflite; pass MODEL"):
        load_eval_model(None)
    monkeypatch.setitem(shipped.SHIPPED_MODELS, "small", tmp_path / "small.tflite")
    with pytest.raises(EmopiError, match=r"no shipped model at .*small\.tflite"):
        load_eval_model("small")


def test_metrics_follow_the_classification_report():
    y = np.array([0, 0, 1, 3, 3, 3])
    probs = np.eye(7)[[0, 3, 1, 3, 3, 0]] * 0.9 + 0.01
    m = classification_metrics(y, probs)
    assert m["accuracy"] == pytest.approx(4 / 6)
    angry = m["classification_report"]["angry"]
    assert angry["precision"] == pytest.approx(0.5) and angry["recall"] == pytest.approx(0.5)
    assert m["confusion_matrix"]["normalized"][3] == pytest.approx(
        [1 / 3, 0, 0, 2 / 3, 0, 0, 0], abs=1e-4
    )
    assert {(c["true"], c["pred"]) for c in m["top_confusions"]} == {
        ("angry", "happy"),
        ("happy", "angry"),
    }


def test_most_confused_orders_wrong_predictions_by_confidence():
    y = np.array([0, 1, 2, 3])
    probs = np.full((4, 7), 0.01)
    probs[0, 0] = 0.99  # right
    probs[1, 4] = 0.6  # wrong, less sure
    probs[2, 5] = 0.9  # wrong, most sure
    probs[3, 6] = 0.7
    assert most_confused(y, probs).tolist() == [2, 3, 1]


def test_stratified_pick_covers_rare_classes():
    y = np.array([3] * 50 + [1])
    picks = stratified_pick(y, 4)
    assert len(set(picks.tolist())) == 4 and 50 in picks


def test_history_keeps_the_last_row_of_a_repeated_epoch(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text(
        "epoch,accuracy,loss,val_accuracy,val_loss\n0,0.1,2,0.2,2\n1,0.2,1.5,0.3,1.6\n"
        "1,0.25,1.4,0.35,1.5\n2,0.3,1.2,0.4,1.4\n"
    )
    h = read_history(path)
    assert h["epoch"] == [1, 2, 3] and h["val_accuracy"] == [0.2, 0.35, 0.4]
    assert read_history(tmp_path / "absent.csv") is None
