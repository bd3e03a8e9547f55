"""The shipped models side by side: one table and a plot of accuracy against cost per face.

`emopi card` reads each shipped model's parity report (written by `emopi quantize`) and
draws the `fer` package's model as a reference point, so MODEL_CARD.md always shows the
figures of the files in the package.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from emopi.edge.errors import EmopiError
from emopi.edge.models import SHIPPED_MODELS
from emopi.train.report import figure


@dataclass(frozen=True)
class Point:
    name: str
    mult_adds: float
    accuracy: float
    note: str = ""


#: `fer`'s mini-Xception (64x64 input, 11.3 M mult-adds counted by :mod:`emopi.train.cost`):
#: 65.9 % on the held-out FER-2013 test set, as issue #20 measured it. It has no figure on
#: val, so the plot marks it apart.
FER_REFERENCE = Point("fer (mini-Xception)", 11.26e6, 0.659, "held-out test, not val")


def parity_of(model: Path) -> dict:
    path = model.with_name(model.stem + "-parity.json")
    if not path.is_file():
        raise EmopiError(f"{model.name} has no parity report {path.name}; run `emopi quantize`")
    return json.loads(path.read_text())


def latencies(models: dict[str, Path]) -> dict[str, float]:
    """Median ms per face of each int8 model, 1 thread, measured side by side in one run."""
    import numpy as np

    from emopi.edge.vision.classify import TFLiteModel
    from emopi.train.quantize import side_by_side_latency

    faces = np.random.default_rng(0).integers(0, 256, (32, 48, 48), dtype=np.uint8)
    runners = {name: TFLiteModel(path) for name, path in models.items()}
    return side_by_side_latency(runners, faces)


def table(models: dict[str, Path], ms: dict[str, float]) -> str:
    """Markdown: params, mult-adds, size, val float/int8, worst class recall, ms per face.

    The parity reports give everything but the speed, which ``ms`` brings from one run.
    """
    lines = [
        "| model | architecture | params | mult-adds | int8 size | val float | val int8 "
        "| worst recall (int8) | ms/face int8 |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for name, model in models.items():
        r = parity_of(model)
        recall = r["int8"]["per_class_recall"]
        worst = min(recall, key=recall.get)
        lines.append(
            f"| `{name}` | {r['architecture']} | {r['params']:,} | {r['mult_adds'] / 1e6:.1f} M "
            f"| {r['int8_size_bytes'] / 1024:.0f} KiB | {r['float32']['accuracy']:.2%} "
            f"| {r['int8']['accuracy']:.2%} | {worst} {recall[worst]:.1%} "
            f"| {ms[name]:.3f} |"
        )
    return "\n".join(lines) + "\n"


def plot(models: dict[str, Path], path: Path, extra: list[Point]) -> None:
    fig = figure(7.5, 4.8)
    ax = fig.add_subplot()
    for name, model in models.items():
        r = parity_of(model)
        x, y = r["mult_adds"] / 1e6, 100 * r["int8"]["accuracy"]
        ax.scatter([x], [y], s=70, color="tab:blue", zorder=3)
        ax.annotate(f"emopi {name} (val, int8)", (x, y), xytext=(6, 6), textcoords="offset points")
    for point in extra:
        x, y = point.mult_adds / 1e6, 100 * point.accuracy
        ax.scatter([x], [y], s=70, facecolors="none", edgecolors="tab:red", zorder=3)
        label = f"{point.name} ({point.note})" if point.note else point.name
        ax.annotate(label, (x, y), xytext=(6, -14), textcoords="offset points")
    from matplotlib.ticker import ScalarFormatter

    ax.set_xscale("log")
    ax.set_xlim(5, 200)
    ax.set_xticks([5, 10, 20, 50, 100, 200])
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.margins(y=0.15)
    ax.set_xlabel("mult-adds per face (millions, log scale)")
    ax.set_ylabel("FER-2013 accuracy (%)")
    ax.set_title("Accuracy against cost per face")
    ax.grid(True, alpha=0.3)
    fig.savefig(path)


def card_command(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models = {name: path for name, path in SHIPPED_MODELS.items() if path.is_file()}
    if not models:
        raise EmopiError("no shipped model in this install")
    (out / "models.md").write_text(table(models, latencies(models)))
    plot(models, out / "cost-accuracy.png", [FER_REFERENCE])
    print(f"{', '.join(models)} -> {out / 'models.md'}, {out / 'cost-accuracy.png'}")
    return 0
