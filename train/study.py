"""``emopi study depth``: the seed research's conv-depth study (3 to 6 conv layers).

Every depth trains in two settings: the research's plain one, and emopi's recipe (BatchNorm,
augmentation, a cosine schedule, label smoothing). Each run has its own folder
(``OUT/<setting>/cnn-depthN[-bn]``), so an interrupted study resumes where it stopped: a
finished run (``metrics.json``) is skipped and an unfinished one continues from its
checkpoint. The result, ``study.json`` + ``study.md`` + ``study.png``, has the research's two
tables (macro and weighted averages) with its figures beside ours, the cost of each depth
(params, mult-adds, int8 ms per face) and a plot of accuracy and macro F1 against depth.
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
from emopi.train.augment import AugmentConfig
from emopi.train.fit import TrainConfig, new_run_dir, split_data, train
from emopi.train.report import classification_metrics, read_history

log = logging.getLogger("emopi.train.study")

#: The seed research's two tables (15 epochs, FER-2013 PublicTest), by number of conv layers.
RESEARCH_COLUMNS = (
    "accuracy",
    "macro_p",
    "macro_r",
    "macro_f1",
    "weighted_p",
    "weighted_r",
    "weighted_f1",
)
RESEARCH: dict[int, dict[str, float]] = {
    depth: dict(zip(RESEARCH_COLUMNS, row, strict=True))
    for depth, row in {
        3: (0.47, 0.53, 0.56, 0.46, 0.61, 0.47, 0.51),
        4: (0.48, 0.49, 0.56, 0.46, 0.56, 0.48, 0.50),
        5: (0.43, 0.47, 0.51, 0.41, 0.55, 0.43, 0.46),
        6: (0.48, 0.52, 0.56, 0.47, 0.59, 0.48, 0.51),
    }.items()
}
RESEARCH_EPOCHS = 15
DEFAULT_DEPTHS = (3, 4, 5, 6)
VAL_METRICS = "val-metrics.json"  # per run: metrics of best.keras, so a rerun skips predicting


@dataclass(frozen=True)
class Setting:
    """How every depth is trained in one arm of the study."""

    name: str
    description: str
    arch_suffix: str
    overrides: dict[str, Any]


SETTINGS: dict[str, Setting] = {
    "plain": Setting(
        "plain",
        "the research's: plain conv layers, no augmentation, Adam at a constant 1e-3, "
        "cross-entropy without smoothing or class weights",
        "",
        dict(
            optimizer="adam",
            lr=1e-3,
            schedule="constant",
            warmup_epochs=0,
            weight_decay=0.0,
            label_smoothing=0.0,
            class_weight="none",
            augment=AugmentConfig(enabled=False),
        ),
    ),
    "recipe": Setting(
        "recipe",
        "emopi's: BatchNorm after every conv, augmentation, SGD with a cosine schedule, "
        "label smoothing 0.1 and square-root class weights (the `emopi train` defaults)",
        "-bn",
        {},
    ),
}


@dataclass
class DepthResult:
    setting: str
    depth: int
    arch: str
    run: str
    params: int
    mult_adds: int
    epochs_run: int
    train_minutes: float
    ms_per_face_int8: float | None  # None until a machine with TensorFlow converts it
    accuracy: float
    macro_p: float
    macro_r: float
    macro_f1: float
    weighted_p: float
    weighted_r: float
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


def parse_settings(text: str) -> list[Setting]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    bad = [n for n in names if n not in SETTINGS]
    if not names or bad:
        raise EmopiError(f"--settings {text!r}: choose among {','.join(SETTINGS)}")
    return [SETTINGS[n] for n in names]


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
    """Val metrics and mult-adds of the run's best model (cached in the run)."""
    cached = run / VAL_METRICS
    if cached.is_file():
        return json.loads(cached.read_text())
    import keras

    from emopi.train.cost import mult_adds
    from emopi.train.data import load_data
    from emopi.train.fit import predict_probs

    val = split_data(load_data(cfg.data, cfg.cache_dir), cfg.val_fraction, cfg.seed)[1]
    model = keras.models.load_model(run / "best.keras")
    metrics = classification_metrics(val.y, predict_probs(model, val.x))
    metrics["mult_adds"] = mult_adds(model)
    cached.write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def _int8_latency(cfg: TrainConfig, run: Path) -> float | None:
    """Median single-face latency (ms, 1 thread) of the best model converted to full int8.

    Conversion is a TensorFlow-backend step: trained on JAX or torch, the study leaves the
    column empty, and rerunning it on the workstation fills it in (training skipped).
    """
    import keras

    cached = run / "int8-latency.json"
    if cached.is_file():
        return float(json.loads(cached.read_text())["ms_per_face"])
    if keras.backend.backend() != "tensorflow":
        return None

    from emopi.edge.vision.classify import TFLiteModel
    from emopi.train.data import load_data
    from emopi.train.models import build
    from emopi.train.quantize import convert, side_by_side_latency

    calib = split_data(load_data(cfg.data, cfg.cache_dir), cfg.val_fraction, cfg.seed)[0].x[:64]
    best = run / "best.keras"
    # Speed depends on the architecture, not the weights: runs brought back from an
    # accelerator without their checkpoints are timed on a fresh copy of the architecture.
    model = keras.models.load_model(best) if best.is_file() else build(cfg.arch)
    path = run / "int8.tflite"
    path.write_bytes(convert(model, calib))
    ms = side_by_side_latency({"int8": TFLiteModel(path)}, calib, rounds=200)["int8"]
    cached.write_text(json.dumps({"ms_per_face": ms}) + "\n")
    return ms


def _result(setting: Setting, depth: int, cfg: TrainConfig, run: Path) -> DepthResult:
    finished = json.loads((run / "metrics.json").read_text())
    m = _val_metrics(cfg, run)
    history = read_history(run / "history.csv")
    report = m["classification_report"]
    macro, weighted = report["macro avg"], report["weighted avg"]
    return DepthResult(
        setting=setting.name,
        depth=depth,
        arch=cfg.arch,
        run=str(run),
        params=int(finished["params"]),
        mult_adds=int(m["mult_adds"]),
        epochs_run=len(history["epoch"]) if history else 0,
        train_minutes=round(float(finished.get("train_minutes", 0.0)), 2),
        ms_per_face_int8=_round(_int8_latency(cfg, run)),
        accuracy=m["accuracy"],
        macro_p=macro["precision"],
        macro_r=macro["recall"],
        macro_f1=macro["f1-score"],
        weighted_p=weighted["precision"],
        weighted_r=weighted["recall"],
        weighted_f1=weighted["f1-score"],
    )


def _round(ms: float | None) -> float | None:
    return None if ms is None else round(ms, 3)


def run_depth_study(
    base: TrainConfig,
    out: Path,
    depths: list[int],
    settings: list[Setting],
    verbose: int = 2,
) -> dict[str, Any]:
    """Train (or resume) every depth in every setting, then write the study into ``out``."""
    results = []
    val_images = 0
    for setting in settings:
        for depth in depths:
            arch = f"cnn-depth{depth}{setting.arch_suffix}"
            cfg = replace(base, arch=arch, name=arch, out=str(out / setting.name))
            cfg = replace(cfg, **setting.overrides)
            run = out / setting.name / arch
            _train_depth(cfg, run, verbose)
            results.append(_result(setting, depth, cfg, run))
            val_images = int(
                _val_metrics(cfg, run)["classification_report"]["macro avg"]["support"]
            )
    study = {
        "study": "depth",
        "data": base.data,
        "epochs": base.epochs,
        "seed": base.seed,
        "val_images": val_images,
        "settings": {s.name: s.description for s in settings},
        "results": [asdict(r) for r in results],
        "research": {
            "epochs": RESEARCH_EPOCHS,
            "by_depth": {str(d): v for d, v in RESEARCH.items()},
        },
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "emopi_version": __version__,
    }
    (out / "study.json").write_text(json.dumps(study, indent=2) + "\n")
    plot_study(study, out / "study.png")
    (out / "study.md").write_text(study_markdown(study))
    return study


def _score_table(study: dict[str, Any], kind: str) -> list[str]:
    """One of the research's tables (macro or weighted averages), ours beside theirs."""
    keys = ("accuracy", f"{kind}_p", f"{kind}_r", f"{kind}_f1")
    lines = [
        f"| conv layers | trained | accuracy | {kind} P | {kind} R | {kind} F1 |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for depth in sorted({r["depth"] for r in study["results"]}):
        ref = study["research"]["by_depth"][str(depth)]
        lines.append(f"| {depth} | research | " + " | ".join(f"{ref[k]:.2f}" for k in keys) + " |")
        for r in study["results"]:
            if r["depth"] == depth:
                values = " | ".join(f"{r[k]:.2f}" for k in keys)
                lines.append(f"| {depth} | emopi, {r['setting']} | {values} |")
    return lines


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def study_markdown(study: dict[str, Any]) -> str:
    depths = ", ".join(str(d) for d in sorted({r["depth"] for r in study["results"]}))
    lines = [
        f"# Depth study: {depths} conv layers",
        "",
        f"Data `{study['data']}`, {study['val_images']} validation faces, {study['epochs']} "
        f"epochs per run (the research: {study['research']['epochs']}), seed {study['seed']}, "
        "scores of the best epoch on val. Settings:",
        "",
        *(f"- **{name}**: {text}" for name, text in study["settings"].items()),
        "",
        "## Macro averages",
        "",
        *_score_table(study, "macro"),
        "",
        "## Weighted averages",
        "",
        *_score_table(study, "weighted"),
        "",
        "## Cost",
        "",
        "| conv layers | trained | params | mult-adds | ms/face int8 | epochs run | minutes |",
        "|---:|---|---:|---:|---:|---:|---:|",
        *(
            f"| {r['depth']} | {r['setting']} | {r['params']:,} | {r['mult_adds'] / 1e6:.1f} M "
            f"| {_ms(r['ms_per_face_int8'])} | {r['epochs_run']} | {r['train_minutes']:.1f} |"
            for r in study["results"]
        ),
        "",
        "Full reports (confusion matrices, curves, saliency): `emopi evaluate RUN --data DATA`.",
        "",
        "![accuracy and macro F1 per depth](study.png)",
        "",
    ]
    return "\n".join(lines)


def plot_study(study: dict[str, Any], path: Path) -> None:
    from emopi.train.report import figure

    fig = figure(10, 4.2)
    research = {int(d): v for d, v in study["research"]["by_depth"].items()}  # JSON keys
    for i, (key, title) in enumerate((("accuracy", "accuracy"), ("macro_f1", "macro F1"))):
        ax = fig.add_subplot(1, 2, i + 1)
        depths = sorted(research)
        ax.plot(depths, [research[d][key] for d in depths], "k--o", label="research")
        for setting in study["settings"]:
            rows = sorted(
                (r for r in study["results"] if r["setting"] == setting), key=lambda r: r["depth"]
            )
            ax.plot(
                [r["depth"] for r in rows], [r[key] for r in rows], "-o", label=f"emopi, {setting}"
            )
        ax.set_xticks(depths)
        ax.set_xlabel("conv layers")
        ax.set_ylabel(f"val {title}")
        ax.set_ylim(0, 1)
        ax.grid(True, alpha=0.3)
        ax.set_title(f"{title} against depth")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=3, fontsize=8)
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
    verbose = 1 if sys.stdout.isatty() else 2
    run_depth_study(base, out, parse_depths(args.depths), parse_settings(args.settings), verbose)
    print((out / "study.md").read_text())
    return 0
