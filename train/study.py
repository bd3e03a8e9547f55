"""``emopi study depth``: the seed research's conv-depth study (3 to 6 conv layers).

Every depth trains with the same data, seed, epochs and pipeline settings, one run folder
each (``OUT/cnn-depthN``), so an interrupted study resumes where it stopped: a finished run
(``metrics.json``) is skipped and an unfinished one continues from its checkpoint. The
result is one table, ``study.json`` + ``study.md`` + ``study.png``, next to the research's
reference figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from emopi.edge import __version__
from emopi.edge.errors import EmopiError
from emopi.train.fit import TrainConfig, new_run_dir, split_data, train
from emopi.train.report import DPI, classification_metrics, read_history

log = logging.getLogger("emopi.train.study")

#: The seed research's best depth: 6 conv layers, 15 epochs, on FER-2013 PublicTest.
REFERENCE = {"depth": 6, "epochs": 15, "accuracy": 0.48, "macro_f1": 0.47}
DEFAULT_DEPTHS = (3, 4, 5, 6)
VAL_METRICS = "val-metrics.json"  # per run: metrics of best.keras, so a rerun skips predicting


@dataclass
class DepthResult:
    depth: int
    arch: str
    run: str
    params: int
    epochs_run: int
    train_minutes: float
    accuracy: float
    macro_f1: float
    weighted_f1: float


def parse_depths(text: str) -> list[int]:
    try:
        depths = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise EmopiError(f"--depths {text!r} is not a comma-separated list of numbers") from None
    bad = [d for d in depths if d not in DEFAULT_DEPTHS]
    if not depths or bad:
        raise EmopiError(f"--depths {text!r}: choose among {','.join(map(str, DEFAULT_DEPTHS))}")
    return depths


def _train_depth(cfg: TrainConfig, run: Path, verbose: int) -> None:
    """Train ``cfg`` in ``run``, continuing an interrupted run; a finished one is left alone."""
    if (run / "metrics.json").is_file():
        log.info("%s already finished, skipping", run)
        return
    if (run / "config.json").is_file():
        started = TrainConfig.from_json(run / "config.json")
        for key in ("data", "arch", "epochs", "seed"):
            if getattr(started, key) != getattr(cfg, key):
                raise EmopiError(
                    f"{run} was started with {key}={getattr(started, key)!r}, not "
                    f"{getattr(cfg, key)!r}; use another --out for a different study"
                )
        log.info("resuming %s", run)
        train(started, run, verbose=verbose)
        return
    train(cfg, new_run_dir(cfg), verbose=verbose)


def _val_metrics(cfg: TrainConfig, run: Path) -> dict[str, Any]:
    """Accuracy and macro/weighted F1 of the run's best model on val (cached in the run)."""
    cached = run / VAL_METRICS
    if cached.is_file():
        return json.loads(cached.read_text())
    import keras

    from emopi.train.data import load_data
    from emopi.train.fit import predict_probs

    val = split_data(load_data(cfg.data, cfg.cache_dir), cfg.val_fraction, cfg.seed)[1]
    model = keras.models.load_model(run / "best.keras")
    metrics = classification_metrics(val.y, predict_probs(model, val.x))
    cached.write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def run_depth_study(
    base: TrainConfig, out: Path, depths: list[int], verbose: int = 2
) -> dict[str, Any]:
    """Train (or resume) ``cnn-depthN`` for each depth and write the study table into ``out``."""
    results = []
    val_images = 0
    for depth in depths:
        arch = f"cnn-depth{depth}"
        cfg = replace(base, arch=arch, name=arch, out=str(out))
        run = out / arch
        _train_depth(cfg, run, verbose)
        finished = json.loads((run / "metrics.json").read_text())
        metrics = _val_metrics(cfg, run)
        history = read_history(run / "history.csv")
        val_images = int(metrics["classification_report"]["macro avg"]["support"])
        results.append(
            DepthResult(
                depth=depth,
                arch=arch,
                run=str(run),
                params=int(finished["params"]),
                epochs_run=len(history["epoch"]) if history else 0,
                train_minutes=round(float(finished.get("train_minutes", 0.0)), 2),
                accuracy=metrics["accuracy"],
                macro_f1=metrics["macro_f1"],
                weighted_f1=metrics["weighted_f1"],
            )
        )
    study = {
        "study": "depth",
        "data": base.data,
        "epochs": base.epochs,
        "seed": base.seed,
        "val_images": val_images,
        "results": [asdict(r) for r in results],
        "reference": REFERENCE,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "emopi_version": __version__,
    }
    (out / "study.json").write_text(json.dumps(study, indent=2) + "\n")
    plot_study(study, out / "study.png")
    (out / "study.md").write_text(study_markdown(study))
    return study


def study_markdown(study: dict[str, Any]) -> str:
    ref = study["reference"]
    depths = ", ".join(str(r["depth"]) for r in study["results"])
    lines = [
        f"# Depth study: {depths} conv layers",
        "",
        f"Data `{study['data']}`, {study['val_images']} validation faces, at most "
        f"{study['epochs']} epochs each (early stopping on val accuracy), seed {study['seed']}.",
        "",
        "| conv layers | params | epochs run | minutes | accuracy | macro F1 | weighted F1 |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in study["results"]:
        lines.append(
            f"| {r['depth']} | {r['params']:,} | {r['epochs_run']} | {r['train_minutes']:.1f} "
            f"| {r['accuracy']:.4f} | {r['macro_f1']:.4f} | {r['weighted_f1']:.4f} |"
        )
    lines.append(
        f"| {ref['depth']} (research) | | {ref['epochs']} | | ≈{ref['accuracy']:.2f} "
        f"| ≈{ref['macro_f1']:.2f} | |"
    )
    lines += [
        "",
        "The last row is the seed research's result for its 6-layer network. Full reports "
        "(confusion matrices, curves, saliency): `emopi evaluate RUN --data DATA`.",
        "",
        "![accuracy and F1 per depth](study.png)",
        "",
    ]
    return "\n".join(lines)


def plot_study(study: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    from matplotlib.figure import Figure

    results = study["results"]
    fig = Figure(figsize=(7.5, 5), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(results))
    for i, (key, label) in enumerate(
        (("accuracy", "accuracy"), ("macro_f1", "macro F1"), ("weighted_f1", "weighted F1"))
    ):
        bars = ax.bar(x + (i - 1) * 0.27, [r[key] for r in results], 0.27, label=label)
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ref = study["reference"]
    ax.axhline(ref["accuracy"], color="black", ls="--", lw=1, label="research accuracy (6 layers)")
    ax.axhline(ref["macro_f1"], color="grey", ls=":", lw=1, label="research macro F1 (6 layers)")
    ax.set_xticks(x, [f"{r['depth']} layers" for r in results])
    ax.set_ylim(0, 1)
    ax.set_ylabel("validation score")
    ax.set_title(f"Depth study on val, at most {study['epochs']} epochs per depth")
    fig.legend(loc="outside lower center", ncols=3, fontsize=8)
    fig.savefig(path)


def study_command(args: argparse.Namespace) -> int:
    if not args.data:
        raise EmopiError("pass --data DATA (a fer2013.csv, a class-folder tree or an .npz)")
    if args.epochs < 1:
        raise EmopiError(f"--epochs must be at least 1, not {args.epochs}")
    base = TrainConfig(
        data=args.data,
        epochs=args.epochs,
        seed=args.seed,
        batch_size=args.batch_size,
        cache_dir=args.cache_dir,
        threads=args.threads,
    )
    out = Path(args.out)
    run_depth_study(base, out, parse_depths(args.depths), 1 if sys.stdout.isatty() else 2)
    print((out / "study.md").read_text())
    return 0
