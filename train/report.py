"""Evaluation reports for ``.keras`` and ``.tflite`` models: ``emopi evaluate``.

A report folder holds ``report.json``, ``report.md`` and these PNGs:

* ``confusion_counts.png`` / ``confusion_normalized.png``: the confusion matrix as counts and
  normalised by true class (each row sums to 1, so the diagonal is per-class recall);
* ``curves.png``: accuracy and loss per epoch, when the model comes from a run folder;
* ``class_distribution.png``: faces per class in the evaluated split (and in train for a run);
* ``saliency.png``: where the predicted class score is most sensitive to the pixels (Keras
  models only: a ``.tflite`` interpreter has no gradients);
* ``most_confused.png``: the wrong predictions the model was most sure of.

Metrics follow scikit-learn's classification report (precision, recall, F1 and support per
class, then accuracy, macro and weighted averages), the table format of the seed research.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from emopi.edge import __version__
from emopi.edge.contract import LABELS, prepare_face, read_metadata
from emopi.edge.errors import EmopiError
from emopi.train.data import UNSPLIT, Faces, load_data
from emopi.train.scores import per_class_recall

log = logging.getLogger("emopi.train.report")

GRID = 4  # saliency and most-confused grids are GRID x GRID faces
TOP_CONFUSIONS = 5
DPI = 110


# --------------------------------------------------------------------------- models


@dataclass
class EvalModel:
    """A model to evaluate: how to get probabilities and what is known about its origin."""

    path: Path
    kind: str  # "keras" | "tflite"
    predict: Callable[[np.ndarray], np.ndarray]  # uint8 (N, 48, 48) -> (N, 7) probabilities
    keras_model: Any = None  # set for Keras models: saliency needs gradients
    run: Path | None = None  # the run folder it belongs to (history.csv, data.json, config.json)
    info: dict[str, Any] = field(default_factory=dict)


def _run_of(path: Path) -> Path | None:
    return path.parent if (path.parent / "config.json").is_file() else None


def load_eval_model(spec: str | None) -> EvalModel:
    """Open a run folder, a ``.keras`` or ``.tflite`` file, or a shipped model by name.

    ``None`` means the shipped default model.
    """
    from emopi.edge.models import SHIPPED_MODELS

    if spec is None or spec in SHIPPED_MODELS:
        shipped = SHIPPED_MODELS[spec or "default"]
        if not shipped.is_file():
            raise EmopiError(
                f"no shipped model at {shipped}; pass MODEL (a run, .keras or .tflite)"
            )
        return _tflite_model(shipped)
    path = Path(spec)
    if path.is_dir():
        if not (path / "best.keras").is_file():
            raise EmopiError(f"{path} has no best.keras: not a run folder, or no epoch finished")
        return _keras_model(path / "best.keras", path)
    if not path.is_file():
        raise EmopiError(f"model {path} does not exist")
    if path.suffix == ".keras":
        return _keras_model(path, _run_of(path))
    if path.suffix == ".tflite":
        return _tflite_model(path)
    raise EmopiError(f"{path} is not a run folder, a .keras or a .tflite model")


def _keras_model(path: Path, run: Path | None) -> EvalModel:
    import keras

    from emopi.train.fit import predict_probs

    try:
        model = keras.models.load_model(path)
    except (OSError, ValueError) as exc:
        raise EmopiError(f"cannot load Keras model {path}: {exc}") from exc
    if model.output_shape[-1] != len(LABELS):
        raise EmopiError(f"{path} outputs {model.output_shape[-1]} classes, not {len(LABELS)}")
    info = {"architecture": model.name, "params": int(model.count_params())}
    return EvalModel(path, "keras", lambda x: predict_probs(model, x), model, run, info)


def _tflite_model(path: Path) -> EvalModel:
    from emopi.edge.vision.classify import TFLiteModel

    info: dict[str, Any] = {}
    if path.with_suffix(".json").is_file():  # the sidecar, validated against the model's sha256
        meta = read_metadata(path)
        info = {"architecture": meta.architecture, "params": meta.params, "metadata": meta.metrics}
    runner = TFLiteModel(path, threads=os.cpu_count() or 1)
    shape = list(runner.output["shape"])
    if shape[-1] != len(LABELS):
        raise EmopiError(f"{path} outputs {shape[-1]} classes, not {len(LABELS)}")
    info.update(input_dtype=runner.in_q.dtype, size_bytes=path.stat().st_size)
    return EvalModel(path, "tflite", runner.run, None, None, info)


# --------------------------------------------------------------------------- data


def select_split(splits: dict[str, Faces], split: str, run: Path | None) -> tuple[str, Faces]:
    """The requested split and its name in the report.

    A tree without split folders is evaluated whole; a missing ``val`` is carved out of
    ``train`` exactly as training did.
    """
    if split in splits:
        return split, splits[split]
    if set(splits) == {UNSPLIT}:
        return f"{UNSPLIT} (no split folders: every image)", splits[UNSPLIT]
    if split == "val" and "train" in splits:
        from emopi.train.fit import TrainConfig, split_data

        cfg = TrainConfig.from_json(run / "config.json") if run else TrainConfig(data="")
        return "val (carved out of train)", split_data(splits, cfg.val_fraction, cfg.seed)[1]
    raise EmopiError(f"the data has no {split!r} split (it has: {', '.join(sorted(splits))})")


def read_history(path: Path) -> dict[str, list[float]] | None:
    """Columns of a Keras ``history.csv``; an epoch logged twice (resume) keeps its last row."""
    if not path.is_file():
        return None
    rows: dict[int, dict[str, str]] = {}
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            rows[int(row["epoch"])] = row
    if not rows:
        return None
    epochs = sorted(rows)
    columns = [c for c in rows[epochs[0]] if c != "epoch"]
    history = {c: [float(rows[e][c]) for e in epochs] for c in columns}
    history["epoch"] = [e + 1 for e in epochs]
    return history


# --------------------------------------------------------------------------- metrics


def classification_metrics(y: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    """Accuracy, the classification report, confusion matrices and the worst confusions."""
    from sklearn.metrics import classification_report, confusion_matrix

    pred = probs.argmax(axis=1)
    labels = list(range(len(LABELS)))
    table = classification_report(
        y, pred, labels=labels, target_names=list(LABELS), output_dict=True, zero_division=0
    )
    counts = confusion_matrix(y, pred, labels=labels)
    support = counts.sum(axis=1, keepdims=True)
    normalized = counts / np.maximum(support, 1)
    off = [(int(counts[t, p]), t, p) for t in labels for p in labels if t != p and counts[t, p] > 0]
    top = sorted(off, reverse=True)[:TOP_CONFUSIONS]
    return {
        "accuracy": float((pred == y).mean()),
        "macro_f1": float(table["macro avg"]["f1-score"]),
        "weighted_f1": float(table["weighted avg"]["f1-score"]),
        "per_class_recall": per_class_recall(y, pred),
        "classification_report": table,
        "confusion_matrix": {
            "labels": list(LABELS),
            "counts": counts.tolist(),
            "normalized": np.round(normalized, 4).tolist(),
        },
        "top_confusions": [
            {
                "true": LABELS[t],
                "pred": LABELS[p],
                "count": n,
                "share_of_true": round(n / int(support[t, 0]), 4),
            }
            for n, t, p in top
        ],
    }


def most_confused(y: np.ndarray, probs: np.ndarray, k: int = GRID * GRID) -> np.ndarray:
    """Indices of the ``k`` wrong predictions with the highest confidence, most sure first."""
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != y)
    conf = probs[wrong, pred[wrong]]
    return wrong[np.argsort(-conf, kind="stable")[:k]]


def stratified_pick(y: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """``k`` indices taking classes in turn, so rare classes appear in the grid too."""
    rng = np.random.default_rng(seed)
    pools = [list(rng.permutation(np.flatnonzero(y == c))) for c in range(len(LABELS))]
    picks: list[int] = []
    while len(picks) < k and any(pools):
        for pool in pools:
            if pool and len(picks) < k:
                picks.append(int(pool.pop()))
    return np.asarray(picks, dtype=np.int64)


def _score_model(model) -> Callable:
    """A function giving the pre-softmax class scores when the softmax can be peeled off.

    Gradients of a saturated softmax vanish for confident predictions; the class score
    before the softmax (Simonyan et al., 2014) gives readable maps.
    """
    import keras
    import tensorflow as tf

    last = model.layers[-1]
    before = keras.Model(model.inputs, last.input)
    if isinstance(last, keras.layers.Softmax):
        return lambda x: before(x, training=False)
    if isinstance(last, keras.layers.Dense) and last.activation is keras.activations.softmax:
        return lambda x: tf.matmul(before(x, training=False), last.kernel) + last.bias
    return lambda x: model(x, training=False)


def saliency_maps(model, faces: np.ndarray, blur_sigma: float = 1.0) -> np.ndarray:
    """|d score(predicted class) / d pixel| per face, scaled to 0..1 by its 99th percentile.

    Raw input gradients are speckled pixel to pixel; a 1-pixel Gaussian blur (display only)
    turns them into regions one can read at 48x48.
    """
    import cv2
    import tensorflow as tf

    score_fn = _score_model(model)
    x = tf.convert_to_tensor(faces[..., None].astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        scores = score_fn(x)
        predicted = tf.gather(scores, tf.argmax(scores, axis=1), batch_dims=1)
    grads = np.abs(tape.gradient(predicted, x).numpy()[..., 0])
    if blur_sigma > 0:
        grads = np.stack([cv2.GaussianBlur(g, (0, 0), blur_sigma) for g in grads])
    top = np.percentile(grads, 99, axis=(1, 2), keepdims=True)
    return np.clip(grads / np.maximum(top, 1e-12), 0.0, 1.0)


# --------------------------------------------------------------------------- figures


def figure(width: float, height: float):
    """A figure outside pyplot's global state, rendered by Agg (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")  # scikit-learn's display helpers import pyplot
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def plot_confusion(y: np.ndarray, pred: np.ndarray, path: Path, normalize: bool) -> None:
    from sklearn.metrics import ConfusionMatrixDisplay

    fig = figure(7.5, 6.5)
    ax = fig.add_subplot()
    ConfusionMatrixDisplay.from_predictions(
        y,
        pred,
        labels=list(range(len(LABELS))),
        display_labels=list(LABELS),
        normalize="true" if normalize else None,
        values_format=".2f" if normalize else "d",
        cmap="Blues",
        ax=ax,
        xticks_rotation=35,
        colorbar=True,
        im_kw={"vmin": 0, "vmax": 1} if normalize else None,
    )
    title = "normalised by true class (rows sum to 1)" if normalize else "counts"
    ax.set_title(f"Confusion matrix, {title}", fontsize=12)
    fig.savefig(path)


def plot_curves(history: dict[str, list[float]], path: Path) -> None:
    from matplotlib.ticker import MaxNLocator

    fig = figure(11, 4.2)
    epochs = history["epoch"]
    for ax, metric in zip(fig.subplots(1, 2), ("accuracy", "loss"), strict=True):
        for key, label, style in ((metric, "train", "-o"), (f"val_{metric}", "val", "-s")):
            if key in history:
                ax.plot(epochs, history[key], style, markersize=3, label=label)
        if "val_accuracy" in history:
            best = int(np.argmax(history["val_accuracy"]))
            ax.axvline(
                epochs[best], color="grey", ls="--", lw=1, label=f"best epoch {epochs[best]}"
            )
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Training curves", fontsize=12)
    fig.savefig(path)


def plot_distribution(counts: dict[str, dict[str, int]], path: Path) -> None:
    """One bar chart per split, each bar labelled with its count and share."""
    fig = figure(5.5 * len(counts), 4.5)
    axes = np.atleast_1d(fig.subplots(1, len(counts)))
    for ax, (split, per_class) in zip(axes, counts.items(), strict=True):
        values = np.array([per_class.get(label, 0) for label in LABELS])
        bars = ax.bar(LABELS, values, color="tab:blue")
        total = max(1, int(values.sum()))
        ax.bar_label(bars, [f"{v}\n{v / total:.1%}" for v in values], fontsize=8)
        ax.set_title(f"{split}: {total} faces")
        ax.set_ylim(0, values.max() * 1.25 + 1)
        ax.tick_params(axis="x", labelrotation=35)
        ax.set_ylabel("faces")
    fig.suptitle("Class distribution", fontsize=12)
    fig.savefig(path)


def _face_title(true: int, pred: int, conf: float) -> tuple[str, str]:
    color = "darkgreen" if true == pred else "firebrick"
    return f"true {LABELS[true]}\npred {LABELS[pred]} {conf:.2f}", color


def plot_saliency(faces: np.ndarray, maps: np.ndarray, y, probs, path: Path) -> None:
    """GRID x GRID cells; each shows the face and its saliency overlaid on it."""
    rows = int(np.ceil(len(faces) / GRID))
    fig = figure(GRID * 3.0, rows * 1.95 + 0.6)
    cells = np.atleast_1d(fig.subfigures(rows, GRID)).ravel()
    for i, cell in enumerate(cells):
        if i >= len(faces):
            continue
        face_ax, over_ax = cell.subplots(1, 2)
        pred = int(probs[i].argmax())
        title, color = _face_title(int(y[i]), pred, float(probs[i, pred]))
        cell.suptitle(title, fontsize=9, color=color)
        face_ax.imshow(faces[i], cmap="gray", vmin=0, vmax=255)
        over_ax.imshow(faces[i], cmap="gray", vmin=0, vmax=255)
        # Opacity follows the saliency, so the face stays visible where the model does not look.
        over_ax.imshow(maps[i], cmap="inferno", alpha=0.9 * maps[i], vmin=0, vmax=1)
        for ax in (face_ax, over_ax):
            ax.set_axis_off()
    fig.suptitle(
        "Saliency: |gradient of the predicted class score w.r.t. each pixel|, blurred 1 px "
        "(bright = sensitive)",
        fontsize=11,
    )
    fig.savefig(path)


def plot_faces(faces: np.ndarray, y, probs, path: Path, title: str) -> None:
    rows = int(np.ceil(len(faces) / GRID))
    fig = figure(GRID * 2.1, rows * 2.45 + 0.5)
    axes = np.atleast_2d(fig.subplots(rows, GRID)).ravel()
    for i, ax in enumerate(axes):
        ax.set_axis_off()
        if i >= len(faces):
            continue
        pred = int(probs[i].argmax())
        ax.imshow(faces[i], cmap="gray", vmin=0, vmax=255)
        text, color = _face_title(int(y[i]), pred, float(probs[i, pred]))
        ax.set_title(text, fontsize=9, color=color)
    fig.suptitle(title, fontsize=11)
    fig.savefig(path)


# --------------------------------------------------------------------------- report


def write_report(
    model: EvalModel,
    faces: Faces,
    out: Path,
    *,
    split: str = "val",
    history: dict[str, list[float]] | None = None,
    train_counts: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Evaluate ``model`` on ``faces`` and write report.json, report.md and the PNGs to ``out``."""
    start = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    x = np.stack([prepare_face(f) for f in faces.x])
    probs = model.predict(x)
    pred = probs.argmax(axis=1)
    report: dict[str, Any] = {
        "model": {"path": str(model.path), "kind": model.kind, **model.info},
        "data": {"split": split, **faces.summary()},
        **classification_metrics(faces.y, probs),
    }
    figures: dict[str, str] = {}

    def save(name: str, draw: Callable[[Path], None]) -> None:
        draw(out / f"{name}.png")
        figures[name] = f"{name}.png"

    save("confusion_counts", lambda p: plot_confusion(faces.y, pred, p, normalize=False))
    save("confusion_normalized", lambda p: plot_confusion(faces.y, pred, p, normalize=True))
    if history:
        best = int(np.argmax(history["val_accuracy"])) if "val_accuracy" in history else -1
        report["history"] = {
            "epochs": len(history["epoch"]),
            "best_epoch": history["epoch"][best],
            "best_val_accuracy": history.get("val_accuracy", [None])[best],
        }
        save("curves", lambda p: plot_curves(history, p))
    else:
        report["history"] = None
    counts = {split: faces.counts()}
    if train_counts and split != "train":
        counts = {"train": train_counts, **counts}
    save("class_distribution", lambda p: plot_distribution(counts, p))

    picks = stratified_pick(faces.y, GRID * GRID)
    if model.keras_model is not None:
        maps = saliency_maps(model.keras_model, x[picks])
        save("saliency", lambda p: plot_saliency(x[picks], maps, faces.y[picks], probs[picks], p))
        report["saliency"] = {"faces": picks.tolist(), "score": "pre-softmax when available"}
    else:
        report["saliency"] = {"skipped": "a .tflite model has no gradients; evaluate the .keras"}

    worst = most_confused(faces.y, probs)
    report["most_confused"] = [
        {
            "index": int(i),
            "true": LABELS[faces.y[i]],
            "pred": LABELS[pred[i]],
            "confidence": round(float(probs[i, pred[i]]), 4),
        }
        for i in worst
    ]
    if len(worst):
        title = "Most confident mistakes (true / predicted label, confidence)"
        save(
            "most_confused", lambda p: plot_faces(x[worst], faces.y[worst], probs[worst], p, title)
        )
    report.update(
        figures=figures,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        emopi_version=__version__,
        seconds=round(time.monotonic() - start, 2),
    )
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(report_markdown(report))
    return report


def report_table(table: dict[str, Any]) -> list[str]:
    """scikit-learn's classification report as a Markdown table."""
    lines = ["| class | precision | recall | f1-score | support |", "|---|---:|---:|---:|---:|"]
    for name in (*LABELS, "macro avg", "weighted avg"):
        r = table[name]
        lines.append(
            f"| {name} | {r['precision']:.2f} | {r['recall']:.2f} | {r['f1-score']:.2f} "
            f"| {int(r['support'])} |"
        )
        if name == LABELS[-1]:
            total = int(table["macro avg"]["support"])
            lines.append(f"| accuracy | | | {table['accuracy']:.2f} | {total} |")
    return lines


_CAPTIONS = {
    "confusion_counts": "Confusion matrix (counts)",
    "confusion_normalized": "Confusion matrix (normalised by true class)",
    "curves": "Accuracy and loss per epoch",
    "class_distribution": "Class distribution",
    "saliency": "Saliency maps",
    "most_confused": "Most confident mistakes",
}


def report_markdown(report: dict[str, Any]) -> str:
    m, d = report["model"], report["data"]
    params = f", {m['params']:,} params" if m.get("params") else ""
    lines = [
        "# Evaluation report",
        "",
        f"- Model: `{m['path']}` ({m['kind']}, {m.get('architecture') or 'unknown'}{params})",
        f"- Data: `{d['source']}`, split {d['split']}, {d['images']} faces "
        f"({d['skipped']} skipped)",
        f"- Accuracy **{report['accuracy']:.2%}**, macro F1 {report['macro_f1']:.3f}, "
        f"weighted F1 {report['weighted_f1']:.3f}",
    ]
    if report["history"]:
        h = report["history"]
        best = h["best_val_accuracy"]
        best_text = f", best val accuracy {best:.2%} at epoch {h['best_epoch']}" if best else ""
        lines.append(f"- Training: {h['epochs']} epochs{best_text}")
    lines += ["", "## Classification report", "", *report_table(report["classification_report"])]
    lines += ["", "## Most frequent confusions", ""]
    if report["top_confusions"]:
        lines += ["| true | predicted as | faces | share of true class |", "|---|---|---:|---:|"]
        lines += [
            f"| {c['true']} | {c['pred']} | {c['count']} | {c['share_of_true']:.1%} |"
            for c in report["top_confusions"]
        ]
    else:
        lines.append("None: every face was classified correctly.")
    lines += ["", "## Figures", ""]
    for name, file in report["figures"].items():
        lines += [f"### {_CAPTIONS[name]}", "", f"![{_CAPTIONS[name]}]({file})", ""]
    if "skipped" in report["saliency"]:
        lines += ["### Saliency maps", "", f"Skipped: {report['saliency']['skipped']}.", ""]
    if not report["history"]:
        lines += ["Training curves: no history.csv next to the model (not a run folder).", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- command


def _default_out(model: EvalModel) -> Path:
    return model.run / "report" if model.run else Path("report")


def evaluate_command(args: argparse.Namespace) -> int:
    if not args.data:
        raise EmopiError("pass --data DATA (a fer2013.csv, a class-folder tree or an .npz)")
    model = load_eval_model(args.model)
    split, faces = select_split(load_data(args.data, args.cache_dir), args.split, model.run)
    history = read_history(model.run / "history.csv") if model.run else None
    train_counts = None
    if model.run and (model.run / "data.json").is_file():
        train_counts = json.loads((model.run / "data.json").read_text())["train"]["per_class"]
    out = Path(args.out) if args.out else _default_out(model)
    report = write_report(
        model, faces, out, split=split, history=history, train_counts=train_counts
    )
    print(
        f"{model.path}: accuracy {report['accuracy']:.2%}, macro F1 {report['macro_f1']:.3f}, "
        f"weighted F1 {report['weighted_f1']:.3f} on {len(faces)} faces of split {split} "
        f"-> {out / 'report.md'}"
    )
    return 0
