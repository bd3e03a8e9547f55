"""Training runs: config, seeds, class weights, schedules, checkpoints and resume.

A run folder holds everything needed to understand or continue it::

    config.json  versions.json  data.json  history.csv  train.log
    best.keras   last.keras     backup/    metrics.json

``emopi train --resume RUN`` continues an interrupted run from ``backup/`` (Keras
``BackupAndRestore``: weights, optimizer state and epoch), with the config it started with.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import random
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from emopi.edge import __version__
from emopi.edge.contract import LABELS
from emopi.edge.errors import EmopiError
from emopi.train.augment import AugmentConfig
from emopi.train.data import UNSPLIT, Faces, load_data

log = logging.getLogger("emopi.train")


@dataclass
class TrainConfig:
    """Every setting of a run; the defaults are the recipe the shipped models were trained with."""

    data: str
    arch: str = "emonet"
    out: str = "runs"
    name: str = ""
    epochs: int = 70
    batch_size: int = 128
    optimizer: str = "sgd"  # sgd (Nesterov) | adam
    lr: float = 0.1  # peak learning rate
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # cosine (to 0 after warm-up) | plateau | constant
    warmup_epochs: int = 2
    label_smoothing: float = 0.1
    class_weight: str = "sqrt"  # none | balanced | sqrt (square root of balanced)
    patience: int = 0  # early stopping on val accuracy; 0 runs the whole schedule
    seed: int = 1234
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    teacher: str = ""  # .keras teacher for online distillation (sees the same augmented batch)
    teacher_logits: str = ""  # .npz of teacher log-probabilities for offline distillation
    temperature: float = 4.0
    distill_weight: float = 0.9  # weight of the soft (teacher) loss; 1 - this on the labels
    cache_dir: str = "runs/cache"
    val_fraction: float = 0.1  # used only when the data has no val split
    init_from: str = ""  # .keras model of the same architecture to start from (warm start)
    threads: int = 0  # TensorFlow intra-op threads; 0 = one per core

    @classmethod
    def from_json(cls, path: Path) -> TrainConfig:
        raw = json.loads(path.read_text())
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise EmopiError(f"{path}: unknown setting(s) {', '.join(unknown)}")
        augment = raw.get("augment", {})
        augment_known = {f.name for f in fields(AugmentConfig)}
        if set(augment) - augment_known:
            bad = ", ".join(sorted(set(augment) - augment_known))
            raise EmopiError(f"{path}: unknown augment setting(s) {bad}")
        if "erase_area" in augment:
            augment["erase_area"] = tuple(augment["erase_area"])
        raw["augment"] = AugmentConfig(**augment)
        return cls(**raw)


def seed_everything(seed: int) -> None:
    import keras

    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)


def class_weights(y: np.ndarray, mode: str) -> np.ndarray | None:
    """Per-class weights; ``sqrt`` softens ``balanced`` so disgust (~1.5 %) is not overfitted."""
    if mode == "none":
        return None
    counts = np.bincount(y, minlength=len(LABELS)).astype(np.float64)
    balanced = len(y) / (len(LABELS) * np.maximum(counts, 1))
    if mode == "balanced":
        return balanced
    if mode == "sqrt":
        return np.sqrt(balanced)
    raise EmopiError(f"unknown class_weight {mode!r}; choose none, balanced or sqrt")


def split_data(splits: dict[str, Faces], val_fraction: float, seed: int) -> tuple[Faces, Faces]:
    """Train and val splits; carve a stratified val out of train when there is none."""
    train = splits.get("train", splits.get(UNSPLIT))
    if train is None:
        raise EmopiError("the data has no training split")
    if "val" in splits:
        return train, splits["val"]
    rng = np.random.default_rng(seed)
    val_idx = []
    for label in range(len(LABELS)):
        idx = np.flatnonzero(train.y == label)
        rng.shuffle(idx)
        val_idx.extend(idx[: max(1, round(len(idx) * val_fraction))] if len(idx) > 1 else [])
    mask = np.zeros(len(train), bool)
    mask[val_idx] = True
    names = train.names

    def part(keep: np.ndarray, source: str) -> Faces:
        kept = None if names is None else names[keep]
        return Faces(train.x[keep], train.y[keep], source, names=kept)

    return part(~mask, train.source), part(mask, f"{train.source} (held-out {val_fraction:.0%})")


def versions() -> dict[str, str]:
    import keras

    from emopi.train.backend import backend_info

    return {
        "emopi": __version__,
        "python": platform.python_version(),
        "keras": keras.__version__,
        **backend_info(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpus": str(os.cpu_count()),
    }


def _schedule(cfg: TrainConfig, steps_per_epoch: int):
    import keras

    if cfg.schedule in ("plateau", "constant"):
        return cfg.lr
    if cfg.schedule != "cosine":
        raise EmopiError(f"unknown schedule {cfg.schedule!r}; choose cosine, plateau or constant")
    warmup = cfg.warmup_epochs * steps_per_epoch
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=cfg.lr / 100 if warmup else cfg.lr,
        decay_steps=max(1, cfg.epochs * steps_per_epoch - warmup),
        alpha=0.0,
        warmup_target=cfg.lr if warmup else None,
        warmup_steps=warmup,
    )


def _optimizer(cfg: TrainConfig, steps_per_epoch: int):
    import keras

    lr = _schedule(cfg, steps_per_epoch)
    wd = cfg.weight_decay or None
    if cfg.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=cfg.momentum, nesterov=True, weight_decay=wd)
    if cfg.optimizer == "adam":
        return keras.optimizers.AdamW(lr, weight_decay=cfg.weight_decay)
    raise EmopiError(f"unknown optimizer {cfg.optimizer!r}; choose sgd or adam")


def _file_logger(run: Path) -> logging.Handler:
    handler = logging.FileHandler(run / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("emopi")
    if logger.getEffectiveLevel() > logging.INFO:  # the log file shows progress whatever the root
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return handler


def _callbacks(cfg: TrainConfig, run: Path, student, val: Faces) -> list:
    import keras

    class Validate(keras.callbacks.Callback):
        """Scores the deployable model on val, saves it, and logs one line per epoch.

        It runs first, so ``val_accuracy`` is in the logs the other callbacks see.
        """

        def __init__(self) -> None:
            super().__init__()
            best = run / "best.json"
            self.best = json.loads(best.read_text())["val_accuracy"] if best.is_file() else -1.0

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs if logs is not None else {}
            probs = predict_probs(student, val.x)
            logs["val_accuracy"] = float((probs.argmax(axis=1) == val.y).mean())
            logs["val_loss"] = float(-np.log(probs[np.arange(len(val)), val.y] + 1e-7).mean())
            student.save(run / "last.keras")
            if logs["val_accuracy"] > self.best:
                self.best = logs["val_accuracy"]
                student.save(run / "best.keras")
                best = {"epoch": epoch + 1, "val_accuracy": self.best}
                (run / "best.json").write_text(json.dumps(best))
            parts = " ".join(f"{k}={v:.4f}" for k, v in logs.items() if isinstance(v, float))
            seconds = time.monotonic() - self.start
            log.info("epoch %d/%d %s (%.0fs)", epoch + 1, cfg.epochs, parts, seconds)

    callbacks = [
        Validate(),
        keras.callbacks.BackupAndRestore(str(run / "backup")),
        keras.callbacks.CSVLogger(str(run / "history.csv"), append=True),
    ]
    if cfg.patience > 0:
        callbacks.append(
            keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=cfg.patience)
        )
    if cfg.schedule == "plateau":
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss", factor=0.5, patience=max(2, cfg.patience // 2), min_lr=1e-5
            )
        )
    return callbacks


def new_run_dir(cfg: TrainConfig) -> Path:
    name = cfg.name or f"{cfg.arch}-{time.strftime('%Y%m%d-%H%M%S')}"
    run = Path(cfg.out) / name
    if (run / "config.json").exists():
        raise EmopiError(f"run {run} already exists; pass --resume {run} to continue it")
    run.mkdir(parents=True, exist_ok=True)
    return run


def _inputs(cfg: TrainConfig, faces: Faces) -> dict[str, np.ndarray]:
    """The trained model's inputs: the faces, plus the teacher's soft labels when offline."""
    from emopi.train.distill import load_teacher_logprobs

    inputs = {"face": faces.x[..., None].astype(np.float32)}
    if cfg.teacher_logits:
        if faces.names is None:
            raise EmopiError(
                "--teacher-logits needs image file names: train from a class-folder tree"
            )
        inputs["teacher_logprobs"] = load_teacher_logprobs(cfg.teacher_logits, faces.names)
    return inputs


def _teacher(cfg: TrainConfig):
    if not cfg.teacher:
        return None
    import keras

    path = Path(cfg.teacher)
    if path.suffix != ".keras" or not path.is_file():
        raise EmopiError(f"--teacher {path}: not a .keras model file")
    return keras.models.load_model(path)


def train(cfg: TrainConfig, run: Path, verbose: int = 2) -> dict:
    """Train (or resume) the run in ``run``; returns the final val metrics."""
    import keras

    from emopi.train.distill import DistillLoss, student_accuracy, training_model
    from emopi.train.models import build

    if cfg.teacher and cfg.teacher_logits:
        raise EmopiError("pass --teacher or --teacher-logits, not both")
    handler = _file_logger(run)
    try:
        _set_threads(cfg.threads)
        seed_everything(cfg.seed)
        train_faces, val_faces = split_data(
            load_data(cfg.data, cfg.cache_dir), cfg.val_fraction, cfg.seed
        )
        (run / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
        (run / "versions.json").write_text(json.dumps(versions(), indent=2))
        (run / "data.json").write_text(
            json.dumps({"train": train_faces.summary(), "val": val_faces.summary()}, indent=2)
        )
        inputs = _inputs(cfg, train_faces)
        labels = keras.utils.to_categorical(train_faces.y, len(LABELS))
        weights = class_weights(train_faces.y, cfg.class_weight)

        student = build(cfg.arch)
        if cfg.init_from:
            _warm_start(student, Path(cfg.init_from))
        trainer = training_model(
            student, cfg.augment, cfg.seed, _teacher(cfg), soft_labels=bool(cfg.teacher_logits)
        )
        steps = int(np.ceil(len(train_faces) / cfg.batch_size))
        trainer.compile(
            optimizer=_optimizer(cfg, steps),
            loss=DistillLoss(cfg.temperature, cfg.distill_weight, cfg.label_smoothing),
            metrics=[student_accuracy],
        )
        log.info(
            "training %s (%d params) on %d faces%s, validating on %d, run %s",
            cfg.arch,
            student.count_params(),
            len(train_faces),
            " distilled from " + (cfg.teacher or cfg.teacher_logits)
            if cfg.teacher or cfg.teacher_logits
            else "",
            len(val_faces),
            run,
        )
        start = time.monotonic()
        trainer.fit(
            inputs,
            labels,
            sample_weight=None if weights is None else weights[train_faces.y],
            batch_size=cfg.batch_size,
            epochs=cfg.epochs,
            shuffle=True,
            verbose=verbose,
            callbacks=_callbacks(cfg, run, student, val_faces),
        )
        minutes = (time.monotonic() - start) / 60
        best = keras.models.load_model(run / "best.keras")
        metrics = evaluate_arrays(best, val_faces)
        metrics.update(arch=cfg.arch, params=int(best.count_params()), train_minutes=minutes)
        (run / "metrics.json").write_text(json.dumps(metrics, indent=2))
        log.info("best val accuracy %.4f, macro F1 %.4f", metrics["accuracy"], metrics["macro_f1"])
        return metrics
    finally:
        logging.getLogger("emopi").removeHandler(handler)
        handler.close()


def _set_threads(threads: int) -> None:
    """Pin TensorFlow's op threads, e.g. to run two trainings side by side on 2 cores."""
    import keras

    if threads <= 0 or keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already initialised in this process: keep its threads
        log.warning("TensorFlow already running; --threads %d ignored", threads)


def _warm_start(model, path: Path) -> None:
    """Copy the weights of a trained model of the same architecture into ``model``.

    Continuing a finished run with a fresh schedule is cheaper than training from scratch;
    the run's config records where it started, so the result stays reproducible.
    """
    import keras

    if path.suffix != ".keras" or not path.is_file():
        raise EmopiError(f"--init-from {path}: not a .keras model file")
    source = keras.models.load_model(path)
    shapes = [w.shape for w in source.get_weights()]
    if source.name != model.name or shapes != [w.shape for w in model.get_weights()]:
        raise EmopiError(
            f"--init-from {path}: its architecture {source.name!r} does not match {model.name!r}"
        )
    model.set_weights(source.get_weights())
    log.info("warm start from %s", path)


def predict_probs(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    return np.asarray(
        model.predict(x[..., None].astype(np.float32), batch_size=batch_size, verbose=0)
    )


def evaluate_arrays(model, faces: Faces) -> dict:
    """Accuracy, macro F1 and per-class recall of a Keras model on ``faces``."""
    from emopi.train.scores import scores

    return {**scores(faces.y, predict_probs(model, faces.x)), "val_images": len(faces)}
