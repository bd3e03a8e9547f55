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
