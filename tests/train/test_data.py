"""FER-2013 loaders: CSV, class folders, npz cache, and their bad-input errors."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from emopi.edge.contract import LABELS
from emopi.edge.errors import EmopiError
from emopi.train.data import load_csv, load_data, load_folder, load_npz, load_tree, save_npz

PIXELS = " ".join(["7"] * 2304)


def write_csv(path, rows):
    path.write_text("emotion,pixels,Usage\n" + "".join(f"{r}\n" for r in rows))
    return path


def test_csv_honours_usage_and_labels(tmp_path):
    path = write_csv(
        tmp_path / "f.csv",
        [f"3,{PIXELS},Training", f"0,{PIXELS},PublicTest", f"6,{PIXELS},PrivateTest"],
    )
    splits = load_csv(path)
    assert set(splits) == {"train", "val", "test"}
    assert splits["train"].y.tolist() == [3] and splits["val"].y.tolist() == [0]
    assert splits["train"].x.shape == (1, 48, 48) and splits["train"].x.dtype == np.uint8
    assert splits["train"].x[0, 0, 0] == 7


def test_csv_bad_rows_are_skipped_counted_and_named(tmp_path, caplog):
    path = write_csv(
        tmp_path / "f.csv",
        [
            f"3,{PIXELS},Training",
            "2,1 2 3,Training",  # 3 pixels
            f"x,{PIXELS},Training",  # bad label
            f"9,{PIXELS},Training",  # out of range
            "4",  # malformed row
        ],
    )
    with caplog.at_level(logging.WARNING, "emopi.train.data"):
        splits = load_csv(path)
    assert len(splits["train"]) == 1 and splits["train"].skipped == 4
    text = caplog.text
    assert f"{path}:3: 3 pixels, expected 2304" in text
    assert f"{path}:4: emotion 'x' is not an integer" in text
    assert f"{path}:6: wrong number of columns" in text
    assert "skipped 4 bad item(s)" in text


def test_csv_missing_columns_and_all_bad(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("label,image\n1,2\n")
    with pytest.raises(EmopiError, match="missing column"):
        load_csv(bad)
    allbad = write_csv(tmp_path / "allbad.csv", ["1,1 2,Training"])
    with pytest.raises(EmopiError, match="no usable images"):
        load_csv(allbad)


def make_tree(root, names=("Happiness", "angry", "SAD"), per=3, size=48):
    for i, name in enumerate(names):
        d = root / name
        d.mkdir(parents=True)
        for j in range(per):
            cv2.imwrite(str(d / f"{j}.png"), np.full((size, size), 10 * i + j, np.uint8))
    return root


def test_folder_maps_synonyms_onto_contract_order(tmp_path):
    faces = load_folder(make_tree(tmp_path / "train"))
    assert faces.counts() == {**dict.fromkeys(LABELS, 0), "happy": 3, "angry": 3, "sad": 3}
    assert faces.x.shape == (9, 48, 48)


def test_folder_resizes_and_grays_colour_images(tmp_path):
    d = tmp_path / "t" / "fear"
    d.mkdir(parents=True)
    cv2.imwrite(str(d / "a.jpg"), np.full((96, 96, 3), 200, np.uint8))
    faces = load_folder(tmp_path / "t")
    assert faces.x.shape == (1, 48, 48) and abs(int(faces.x[0, 5, 5]) - 200) <= 2


def test_folder_errors_name_the_path(tmp_path):
    make_tree(tmp_path / "a", names=("happy", "contempt"))
    with pytest.raises(EmopiError, match=r"unknown class folder .*contempt"):
        load_folder(tmp_path / "a")
    (tmp_path / "b" / "sad").mkdir(parents=True)
    with pytest.raises(EmopiError, match=r"class folder .*sad has no images"):
        load_folder(tmp_path / "b")


def test_folder_skips_unreadable_images(tmp_path, caplog):
    root = make_tree(tmp_path / "c", names=("happy",))
    (root / "happy" / "broken.jpg").write_bytes(b"not a jpeg")
    with caplog.at_level(logging.WARNING, "emopi.train.data"):
        faces = load_folder(root)
    assert len(faces) == 3 and faces.skipped == 1
    assert "broken.jpg: unreadable image" in caplog.text


def test_tree_and_npz_cache_round_trip(tmp_path):
    make_tree(tmp_path / "d" / "train")
    make_tree(tmp_path / "d" / "test", per=1)
    splits = load_tree(tmp_path / "d")
    assert set(splits) == {"train", "val"} and len(splits["val"]) == 3
    cache = save_npz(tmp_path / "c.npz", splits)
    again = load_npz(cache)
    assert np.array_equal(again["train"].x, splits["train"].x)
    assert np.array_equal(again["val"].y, splits["val"].y)
    cached = load_data(tmp_path / "d", cache_dir=tmp_path / "cache")
    assert list((tmp_path / "cache").glob("faces-*.npz"))
    assert len(load_data(tmp_path / "d", cache_dir=tmp_path / "cache")["train"]) == len(
        cached["train"]
    )


def test_missing_data_is_one_clear_error(tmp_path):
    with pytest.raises(EmopiError, match="does not exist"):
        load_data(tmp_path / "nope")


def test_real_fer_sample_csv(shared_data):
    splits = load_csv(shared_data / "fer2013" / "fer2013_sample.csv")
    assert len(splits["train"]) == 1400 and len(splits["val"]) == 656
    assert splits["train"].skipped == 0
    assert splits["val"].counts()["disgust"] == 56
