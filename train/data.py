"""FER-2013 loaders: the Kaggle CSV, class-folder trees and a fast ``.npz`` cache.

Every loader returns :class:`Faces`: uint8 ``(N, 48, 48)`` images and int labels in the
contract's label order, whatever the source calls its classes. Structural problems (no
such file, an unknown class folder, an empty folder, missing CSV columns) raise
:class:`EmopiError` naming the path. Individual bad rows or images are skipped, counted and
logged with their file and row, never silently.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emopi.edge.contract import INPUT_SIZE, LABELS, canonical_label, prepare_face
from emopi.edge.errors import EmopiError

log = logging.getLogger("emopi.train.data")

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".pgm"}
#: Kaggle CSV ``Usage`` values and the split names used here.
CSV_SPLITS = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
#: The one split of a class-folder tree without split folders: every image, not yet divided.
UNSPLIT = "all"
#: Folder names accepted for each split in a class-folder tree.
TREE_SPLITS = {"train": ("train", "training"), "val": ("val", "valid", "validation", "test")}
PIXELS = INPUT_SIZE * INPUT_SIZE
MAX_REPORTED = 10  # bad rows logged one by one before only counting


@dataclass
class Faces:
    """A split of face images with labels in :data:`LABELS` order."""

    x: np.ndarray  # (N, 48, 48) uint8
    y: np.ndarray  # (N,) int64
    source: str
    skipped: int = 0
    problems: list[str] = field(default_factory=list)
    names: np.ndarray | None = None  # (N,) file names where the source has them (folders)

    def __len__(self) -> int:
        return len(self.y)

    def counts(self) -> dict[str, int]:
        bins = np.bincount(self.y, minlength=len(LABELS))
        return {label: int(n) for label, n in zip(LABELS, bins, strict=True)}

    def summary(self) -> dict[str, object]:
        return {
            "source": self.source,
            "images": len(self),
            "skipped": self.skipped,
            "per_class": self.counts(),
        }


class _Problems:
    """Counts skipped inputs and logs the first few with where they are."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, message: str) -> None:
        if len(self.messages) < MAX_REPORTED:
            log.warning("skipped: %s", message)
        self.messages.append(message)

    def finish(self, what: str) -> None:
        if self.messages:
            log.warning("skipped %d bad item(s) in %s", len(self.messages), what)


def _faces(
    images: list[np.ndarray],
    labels: list[int],
    source: str,
    problems: _Problems,
    names: list[str] | None = None,
) -> Faces:
    if not images:
        detail = f": {problems.messages[0]}" if problems.messages else ""
        raise EmopiError(f"no usable images in {source}{detail}")
    problems.finish(source)
    return Faces(
        np.stack(images).astype(np.uint8),
        np.asarray(labels, np.int64),
        source,
        len(problems.messages),
        problems.messages,
        np.asarray(names) if names is not None else None,
    )


# --------------------------------------------------------------------------- CSV


def load_csv(path: str | Path) -> dict[str, Faces]:
    """Load the Kaggle ``fer2013.csv`` (emotion, pixels, Usage), split by ``Usage``.

    A file without a Usage column is returned as one ``train`` split.
    """
    path = Path(path)
    if not path.is_file():
        raise EmopiError(f"CSV file {path} does not exist")
    split_rows: dict[str, tuple[list[np.ndarray], list[int]]] = {}
    problems = _Problems()
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"emotion", "pixels"} - set(reader.fieldnames or ())
        if missing:
            raise EmopiError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        for row_no, row in enumerate(reader, start=2):  # line 1 is the header
            parsed = _parse_csv_row(row, f"{path}:{row_no}", problems)
            if parsed is None:
                continue
            split, image, label = parsed
            images, labels = split_rows.setdefault(split, ([], []))
            images.append(image)
            labels.append(label)
    if not split_rows:
        return {"train": _faces([], [], str(path), problems)}
    problems.finish(str(path))
    # Bad rows may not even have a readable split, so every split reports the file's count.
    return {
        split: Faces(
            np.stack(images),
            np.asarray(labels, np.int64),
            f"{path}[{split}]",
            len(problems.messages),
            problems.messages,
        )
        for split, (images, labels) in split_rows.items()
    }


def _parse_csv_row(
    row: dict[str, str | None], where: str, problems: _Problems
) -> tuple[str, np.ndarray, int] | None:
    if None in row or any(v is None for v in row.values()):
        problems.add(f"{where}: wrong number of columns")
        return None
    try:
        label = int(row["emotion"] or "")
    except ValueError:
        problems.add(f"{where}: emotion {row['emotion']!r} is not an integer")
        return None
    if not 0 <= label < len(LABELS):
        problems.add(f"{where}: emotion {label} is outside 0..{len(LABELS) - 1}")
        return None
    try:
        pixels = np.array((row["pixels"] or "").split(), dtype=np.int64)
    except ValueError:
        problems.add(f"{where}: pixels are not integers")
        return None
    if pixels.size != PIXELS:
        problems.add(f"{where}: {pixels.size} pixels, expected {PIXELS}")
        return None
    if pixels.min() < 0 or pixels.max() > 255:
        problems.add(f"{where}: pixel values outside 0..255")
        return None
    usage = (row.get("Usage") or "Training").strip()
    split = CSV_SPLITS.get(usage)
    if split is None:
        problems.add(f"{where}: unknown Usage {usage!r}")
        return None
    return split, pixels.astype(np.uint8).reshape(INPUT_SIZE, INPUT_SIZE), label


# --------------------------------------------------------------------------- folders


def load_folder(root: str | Path) -> Faces:
    """Load ``root/<class>/*.jpg|png``; class folder names map onto :data:`LABELS`."""
    import cv2

    root = Path(root)
    if not root.is_dir():
        raise EmopiError(f"data folder {root} does not exist")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir())
    if not class_dirs:
        raise EmopiError(f"data folder {root} has no class folders (expected e.g. {root}/happy/)")
    images: list[np.ndarray] = []
    labels: list[int] = []
    names: list[str] = []
    problems = _Problems()
    for class_dir in class_dirs:
        label = canonical_label(class_dir.name)
        if label is None:
            raise EmopiError(
                f"unknown class folder {class_dir}; expected one of {', '.join(LABELS)}"
            )
        files = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise EmopiError(f"class folder {class_dir} has no images")
        for file in files:
            image = cv2.imread(str(file), cv2.IMREAD_GRAYSCALE)
            if image is None:
                problems.add(f"{file}: unreadable image")
                continue
            images.append(prepare_face(image))
            labels.append(LABELS.index(label))
            names.append(f"{class_dir.name}/{file.name}")
    return _faces(images, labels, str(root), problems, names)


def load_tree(root: str | Path) -> dict[str, Faces]:
    """Load ``root/train`` and ``root/val`` (or ``test``) class-folder trees.

    A tree of class folders alone comes back as the :data:`UNSPLIT` split: evaluation uses
    every image of it, training carves its val out of it.
    """
    root = Path(root)
    out = {}
    for split, names in TREE_SPLITS.items():
        for name in names:
            if (root / name).is_dir():
                out[split] = load_folder(root / name)
                break
    if not out:
        out[UNSPLIT] = load_folder(root)
    return out


# --------------------------------------------------------------------------- cache and dispatch


def save_npz(path: str | Path, splits: dict[str, Faces]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    for split, faces in splits.items():
        arrays[f"{split}_x"], arrays[f"{split}_y"] = faces.x, faces.y
        arrays[f"{split}_source"] = np.array(faces.source)
        arrays[f"{split}_skipped"] = np.array(faces.skipped)
        if faces.names is not None:
            arrays[f"{split}_names"] = faces.names
    # One temporary name per process: two runs started together build the same cache, and
    # the rename is atomic, so an interrupted write never leaves a half cache either.
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)
    return path


def load_npz(path: str | Path) -> dict[str, Faces]:
    path = Path(path)
    try:
        data = np.load(path)
    except (OSError, ValueError) as exc:
        raise EmopiError(f"cannot read cache {path}: {exc}") from exc
    splits = {}
    for key in data.files:
        if key.endswith("_bytes"):  # JPEG bytes packed by shared/tools/pack_fer_npz.py
            splits[key[:-6]] = _packed_split(data, key[:-6], path)
        elif key.endswith("_x"):
            split = key[:-2]
            x, y = data[key], data[f"{split}_y"]
            if x.ndim != 3 or x.shape[1:] != (INPUT_SIZE, INPUT_SIZE) or len(x) != len(y):
                raise EmopiError(f"cache {path}: split {split} has shape {x.shape}, not N×48×48")
            source = str(data[f"{split}_source"]) if f"{split}_source" in data.files else str(path)
            skipped = int(data[f"{split}_skipped"]) if f"{split}_skipped" in data.files else 0
            names = data[f"{split}_names"] if f"{split}_names" in data.files else None
            splits[split] = Faces(
                x.astype(np.uint8), y.astype(np.int64), source, skipped, names=names
            )
    if not splits:
        raise EmopiError(f"cache {path} holds no splits")
    return splits


def _packed_split(data, split: str, path: Path) -> Faces:
    """Decode one split of JPEG bytes with offsets (``S_bytes``, ``S_off``, ``S_y``, ``S_files``).

    This is how the data travel to an accelerator machine: one file, a quarter of the size
    of the decoded pixels, and the file names that align the teacher's soft labels.
    """
    import cv2

    blob, offsets, labels = data[f"{split}_bytes"], data[f"{split}_off"], data[f"{split}_y"]
    if len(offsets) != len(labels) + 1:
        raise EmopiError(f"{path}: split {split} has {len(labels)} labels, {len(offsets)} offsets")
    files = data[f"{split}_files"].astype(str) if f"{split}_files" in data.files else None
    images: list[np.ndarray] = []
    kept: list[int] = []
    problems = _Problems()
    for i in range(len(labels)):
        image = cv2.imdecode(blob[offsets[i] : offsets[i + 1]], cv2.IMREAD_GRAYSCALE)
        if image is None:
            problems.add(f"{path}[{split}][{i}]: undecodable image")
            continue
        images.append(prepare_face(image))
        kept.append(i)
    names = None if files is None else [str(files[i]) for i in kept]
    return _faces(images, [int(labels[i]) for i in kept], f"{path}[{split}]", problems, names)


def _fingerprint(path: Path) -> str:
    """Cheap identity of a data source: names, sizes and mtimes of its files."""
    digest = hashlib.sha1(str(path.resolve()).encode())
    files = [path] if path.is_file() else sorted(path.rglob("*"))
    for f in files:
        if f.is_file():
            st = f.stat()
            digest.update(f"{f.relative_to(path.parent)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def load_data(spec: str | Path, cache_dir: str | Path | None = None) -> dict[str, Faces]:
    """Load any supported source, using an ``.npz`` cache in ``cache_dir`` when given."""
    path = Path(spec)
    if not path.exists():
        raise EmopiError(f"data {path} does not exist")
    if path.suffix == ".npz":
        return load_npz(path)
    cache = Path(cache_dir) / f"faces-v2-{_fingerprint(path)}.npz" if cache_dir else None
    if cache and cache.is_file():
        log.info("using cached faces %s", cache)
        return load_npz(cache)
    splits = load_csv(path) if path.suffix.lower() == ".csv" else load_tree(path)
    if cache:
        save_npz(cache, splits)
    return splits
