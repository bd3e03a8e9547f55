"""Handlers behind the training sub-commands (imported only when one runs)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from emopi.edge.errors import EmopiError
from emopi.train.fit import TrainConfig, new_run_dir, train


def train_command(args: argparse.Namespace) -> int:
    if args.resume:
        run = Path(args.resume)
        if not (run / "config.json").is_file():
            raise EmopiError(f"{run} is not a run folder (no config.json)")
        cfg = TrainConfig.from_json(run / "config.json")
    else:
        if not args.data:
            raise EmopiError("pass --data DATA (a fer2013.csv, a class-folder tree or an .npz)")
        cfg = TrainConfig(data=args.data)
        overrides = {
            k: v
            for k, v in vars(args).items()
            if k in TrainConfig.__dataclass_fields__ and v is not None and k != "data"
        }
        cfg = replace(cfg, **overrides)
        if args.no_augment:
            cfg = replace(cfg, augment=replace(cfg.augment, enabled=False))
        run = new_run_dir(cfg)
    verbose = 1 if sys.stdout.isatty() else 2
    metrics = train(cfg, run, verbose=verbose)
    print(json.dumps({"run": str(run), **metrics}, indent=2))
    return 0


def _resolve_model(spec: str) -> tuple[Path, dict]:
    """A run folder (uses best.keras and its data summary) or a .keras file."""
    path = Path(spec)
    if path.is_dir():
        model = path / "best.keras"
        data = (
            json.loads((path / "data.json").read_text()) if (path / "data.json").is_file() else {}
        )
        if not model.is_file():
            raise EmopiError(f"run {path} has no best.keras yet")
        return model, data
    if path.suffix != ".keras" or not path.is_file():
        raise EmopiError(f"{path} is neither a run folder nor a .keras model")
    return path, {}


def quantize_command(args: argparse.Namespace) -> int:
    import keras

    from emopi.train.data import load_data
    from emopi.train.fit import split_data
    from emopi.train.models import with_flip_tta
    from emopi.train.quantize import GuardConfig, quantize_model, stratified_sample

    model_path, data_summary = _resolve_model(args.model)
    train_faces, val_faces = split_data(load_data(args.calib, args.cache_dir), 0.1, args.seed)
    if args.val:
        val_faces = split_data(load_data(args.val, args.cache_dir), 0.1, args.seed)[1]
    model = keras.models.load_model(model_path)
    if args.tta_flip:
        model = with_flip_tta(model)
    calib = stratified_sample(train_faces, args.calib_size, args.seed)
    report = quantize_model(
        model,
        calib,
        val_faces,
        Path(args.out),
        architecture=model.name,
        training_data=data_summary or {"train": train_faces.summary(), "val": val_faces.summary()},
        guard=GuardConfig(max_drop_pp=args.max_drop),
    )
    print(
        f"int8 {report['int8']['accuracy']:.2%} vs float {report['float32']['accuracy']:.2%} "
        f"({report['accuracy_delta_pp']:+.2f} pp), agreement {report['top1_agreement']:.2%}, "
        f"{report['int8_size_bytes'] / 1024:.0f} KiB -> {args.out}"
    )
    return 0
