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
from emopi.train.data import Faces, load_data

log = logging.getLogger("emopi.train")


@dataclass
class TrainConfig:
    data: str
    arch: str = "emonet"
    out: str = "runs"
    name: str = ""
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    schedule: str = "cosine"  # cosine | plateau
    warmup_epochs: int = 1
    label_smoothing: float = 0.1
    class_weight: str = "sqrt"  # none | balanced | sqrt (square root of balanced)
    patience: int = 5  # early stopping on val accuracy; 0 disables it
    seed: int = 1234
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    cache_dir: str = "runs/cache"
    val_fraction: float = 0.1  # used only when the data has no val split
    init_from: str = ""  # .keras model of the same architecture to start from (warm start)
    threads: int = 0  # TensorFlow intra-op threads; 0 = one per core

    @classmethod
    def from_json(cls, path: Path) -> TrainConfig:
        raw = json.loads(path.read_text())
        raw["augment"] = AugmentConfig(**raw.get("augment", {}))
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


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
    if "train" not in splits:
        raise EmopiError("the data has no training split")
    train = splits["train"]
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
    return (
        Faces(train.x[~mask], train.y[~mask], train.source),
        Faces(train.x[mask], train.y[mask], f"{train.source} (held-out {val_fraction:.0%})"),
    )


def versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    return {
        "emopi": __version__,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpus": str(os.cpu_count()),
    }


def _schedule(cfg: TrainConfig, steps_per_epoch: int):
    import keras

    if cfg.schedule == "plateau":
        return cfg.lr
    if cfg.schedule != "cosine":
        raise EmopiError(f"unknown schedule {cfg.schedule!r}; choose cosine or plateau")
    warmup = cfg.warmup_epochs * steps_per_epoch
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=cfg.lr / 10 if warmup else cfg.lr,
        decay_steps=max(1, cfg.epochs * steps_per_epoch - warmup),
        alpha=0.01,
        warmup_target=cfg.lr if warmup else None,
        warmup_steps=warmup,
    )


def _file_logger(run: Path) -> logging.Handler:
    handler = logging.FileHandler(run / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("emopi")
    if logger.getEffectiveLevel() > logging.INFO:  # the log file shows progress whatever the root
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return handler


def _callbacks(cfg: TrainConfig, run: Path) -> list:
    import keras

    class EpochLog(keras.callbacks.Callback):
        """One line per epoch in train.log, so `tail -f` shows progress."""

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            parts = " ".join(f"{k}={v:.4f}" for k, v in logs.items() if isinstance(v, float))
            log.info(
                "epoch %d/%d %s (%.0fs)",
                epoch + 1,
                cfg.epochs,
                parts,
                time.monotonic() - self.start,
            )

    callbacks = [
        keras.callbacks.BackupAndRestore(str(run / "backup")),
        keras.callbacks.ModelCheckpoint(str(run / "last.keras")),
        keras.callbacks.ModelCheckpoint(
            str(run / "best.keras"), monitor="val_accuracy", mode="max", save_best_only=True
        ),
        keras.callbacks.CSVLogger(str(run / "history.csv"), append=True),
        EpochLog(),
    ]
    if cfg.patience > 0:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_accuracy",
                mode="max",
                patience=cfg.patience,
                restore_best_weights=True,
            )
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


def train(cfg: TrainConfig, run: Path, verbose: int = 2) -> dict:
    """Train (or resume) the run in ``run``; returns the final val metrics."""
    import keras

    from emopi.train.augment import make_dataset
    from emopi.train.models import build

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
        weights = class_weights(train_faces.y, cfg.class_weight)
        train_ds = make_dataset(
            train_faces.x,
            train_faces.y,
            cfg.batch_size,
            training=True,
            augment=cfg.augment,
            sample_weights=weights,
            seed=cfg.seed,
        )
        val_ds = make_dataset(val_faces.x, val_faces.y, 256, training=False)
        steps = int(np.ceil(len(train_faces) / cfg.batch_size))
        model = build(cfg.arch)
        if cfg.init_from:
            _warm_start(model, Path(cfg.init_from))
        model.compile(
            optimizer=keras.optimizers.Adam(_schedule(cfg, steps)),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
            metrics=["accuracy"],
        )
        log.info(
            "training %s (%d params) on %d faces, validating on %d, run %s",
            cfg.arch,
            model.count_params(),
            len(train_faces),
            len(val_faces),
            run,
        )
        start = time.monotonic()
        model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=cfg.epochs,
            verbose=verbose,
            callbacks=_callbacks(cfg, run),
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
    if threads <= 0:
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
    from sklearn.metrics import f1_score, recall_score

    pred = predict_probs(model, faces.x).argmax(axis=1)
    labels = list(range(len(LABELS)))
    recall = recall_score(faces.y, pred, labels=labels, average=None, zero_division=0)
    return {
        "accuracy": float((pred == faces.y).mean()),
        "macro_f1": float(f1_score(faces.y, pred, labels=labels, average="macro", zero_division=0)),
        "per_class_recall": {lab: float(r) for lab, r in zip(LABELS, recall, strict=True)},
        "val_images": len(faces),
    }
