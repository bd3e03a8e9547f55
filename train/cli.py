"""Training sub-commands, registered into the `emopi` CLI through an entry point.

This module must stay cheap to import: parsers only, TensorFlow is imported by handlers.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util

from emopi.edge.errors import EmopiError


def require_tensorflow() -> None:
    """Fail with one line when the train extra is missing."""
    if importlib.util.find_spec("tensorflow") is None:
        raise EmopiError("TensorFlow is not installed; run: pip install 'emopi[train]'")


def lazy(module: str, func: str):
    """A handler that imports ``emopi.train.<module>`` only when the command runs."""

    def handler(args: argparse.Namespace) -> int | None:
        require_tensorflow()
        return getattr(importlib.import_module(f"emopi.train.{module}"), func)(args)

    return handler


def _train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="Train an emotion CNN on FER-2013 (needs emopi[train]).",
        description="Train an emotion CNN. DATA is a Kaggle fer2013.csv, a class-folder tree "
        "(train/<class>/*.jpg, val|test/<class>/...) or a cached .npz. Progress goes to "
        "RUN/train.log; an interrupted run continues with --resume RUN.",
    )
    p.add_argument("--data", help="training data (csv, folder tree or npz)")
    p.add_argument("--arch", help="architecture (default emonet); see `emopi study --help`")
    p.add_argument("--out", help="parent folder for runs (default runs/)")
    p.add_argument("--name", help="run folder name (default ARCH-TIMESTAMP)")
    p.add_argument("--epochs", type=int, help="epochs (default 70)")
    p.add_argument("--batch-size", dest="batch_size", type=int, help="batch size (default 128)")
    p.add_argument(
        "--optimizer", choices=("sgd", "adam"), help="SGD with Nesterov (default) or AdamW"
    )
    p.add_argument("--lr", type=float, help="peak learning rate (default 0.1)")
    p.add_argument("--momentum", type=float, help="SGD momentum (default 0.9)")
    p.add_argument("--weight-decay", dest="weight_decay", type=float, help="default 5e-4")
    p.add_argument(
        "--schedule", choices=("cosine", "plateau", "constant"), help="LR schedule (default cosine)"
    )
    p.add_argument("--warmup-epochs", dest="warmup_epochs", type=int, help="default 2")
    p.add_argument("--label-smoothing", dest="label_smoothing", type=float, help="default 0.1")
    p.add_argument("--class-weight", dest="class_weight", choices=("none", "balanced", "sqrt"))
    p.add_argument("--patience", type=int, help="early-stopping patience, 0 = off (default)")
    p.add_argument(
        "--teacher", metavar="MODEL", help="online distillation from a .keras teacher model"
    )
    p.add_argument(
        "--teacher-logits",
        dest="teacher_logits",
        metavar="NPZ",
        help="offline distillation from the teacher's log-probabilities (logprobs, files)",
    )
    p.add_argument("--temperature", type=float, help="distillation temperature (default 4)")
    p.add_argument(
        "--distill-weight",
        dest="distill_weight",
        type=float,
        help="weight of the teacher's soft loss, the rest on the labels (default 0.9)",
    )
    p.add_argument("--seed", type=int)
    p.add_argument("--no-augment", action="store_true", help="disable augmentation")
    p.add_argument(
        "--init-from",
        dest="init_from",
        metavar="MODEL",
        help="start from the weights of a trained .keras model of the same architecture",
    )
    p.add_argument(
        "--threads",
        type=int,
        help="TensorFlow threads (default: all cores; 1 runs 2 side by side); "
        "set KERAS_BACKEND=jax or torch to train on an accelerator",
    )
    p.add_argument("--resume", metavar="RUN", help="continue an interrupted run")
    p.set_defaults(handler=lazy("commands", "train_command"))


def _quantize_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "quantize",
        help="Quantise a trained model to full-int8 TFLite.",
        description="Convert RUN_OR_MODEL (a run folder or a .keras file) to a full-int8 "
        "TFLite model calibrated on real training faces, plus a float32 model for comparison, "
        "metadata sidecars and a parity report. Fails if int8 collapses.",
    )
    p.add_argument("model", metavar="RUN_OR_MODEL")
    p.add_argument("--calib", required=True, help="data whose train split calibrates")
    p.add_argument("--val", help="data whose val split checks parity (default: --calib's)")
    p.add_argument("--out", required=True, help="output .tflite path")
    p.add_argument("--calib-size", type=int, default=300, help="calibration faces (default 300)")
    p.add_argument(
        "--max-drop",
        type=float,
        default=2.0,
        help="reject if int8 accuracy falls more than this many pp (default 2)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", default="runs/cache", help="npz cache for loaded data")
    p.add_argument(
        "--tta-flip",
        action="store_true",
        help="average each face with its mirror image inside the model (2x cost)",
    )
    p.set_defaults(handler=lazy("commands", "quantize_command"))


def _evaluate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="Evaluate a .keras or .tflite model and write a report.",
        description="Evaluate MODEL (a run folder, a .keras or a .tflite file; default: the "
        "shipped model) on a split of DATA. Writes report.json, report.md and PNGs: "
        "classification report, confusion matrices, training curves, class distribution, "
        "saliency maps (Keras only) and the most confident mistakes.",
    )
    p.add_argument(
        "model",
        nargs="?",
        metavar="MODEL",
        help="run folder, .keras or .tflite, or a shipped model: default (the default) or small",
    )
    p.add_argument("--data", help="evaluation data (csv, folder tree or npz)")
    p.add_argument("--split", default="val", help="split of DATA to evaluate (default val)")
    p.add_argument("--out", help="report folder (default RUN/report, else ./report)")
    p.add_argument("--cache-dir", default="runs/cache", help="npz cache for loaded data")
    p.set_defaults(handler=lazy("report", "evaluate_command"))


def _study_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "study",
        help="Reproduce the research's conv-depth study.",
        description="Train cnn-depth3..6 in the research's plain setting and with emopi's "
        "recipe (BatchNorm, augmentation, cosine schedule, label smoothing), same data, seed "
        "and epochs, one run folder each under OUT/<setting>/ (rerunning skips finished runs "
        "and resumes an interrupted one). Then write study.json, study.md (the research's "
        "macro and weighted tables with its figures beside ours, and each depth's params, "
        "mult-adds and int8 ms per face) and study.png (accuracy and macro F1 against depth).",
    )
    p.add_argument("study", choices=("depth",), help="the study to run")
    p.add_argument("--data", help="training data (csv, folder tree or npz)")
    p.add_argument("--epochs", type=int, default=15, help="maximum epochs per depth (default 15)")
    p.add_argument("--depths", default="3,4,5,6", help="comma-separated depths (default 3,4,5,6)")
    p.add_argument(
        "--settings",
        default="plain,recipe",
        help="plain (the research's: no BatchNorm, no augmentation, Adam) and/or recipe "
        "(emopi's training recipe); default both",
    )
    p.add_argument("--out", default="runs/study-depth", help="study folder (runs/study-depth)")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=128)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--threads", type=int, default=0, help="TensorFlow threads (default: all)")
    p.add_argument("--cache-dir", default="runs/cache", help="npz cache for loaded data")
    p.set_defaults(handler=lazy("study", "study_command"))


def _card_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "card",
        help="Table and plot of the shipped models for the model card.",
        description="Read each shipped model's parity report, time every model side by side "
        "in one run, and write OUT/models.md (params, mult-adds, size, val float/int8, worst "
        "class recall, ms per face) and "
        "OUT/cost-accuracy.png (accuracy against mult-adds, with the fer package's model).",
    )
    p.add_argument("--out", default="docs/model", help="output folder (default docs/model)")
    p.set_defaults(handler=lazy("card", "card_command"))


def register(sub: argparse._SubParsersAction) -> None:
    _train_parser(sub)
    _quantize_parser(sub)
    _evaluate_parser(sub)
    _study_parser(sub)
    _card_parser(sub)
