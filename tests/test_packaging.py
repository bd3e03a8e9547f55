"""Packaging: one import root `emopi`, wheel contents, editable install."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from helpers import ROOT


def test_wheel_has_one_import_root(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    roots = {n.split("/")[0] for n in names if not n.startswith("emopi-")}
    assert roots == {"emopi"}
    assert "emopi/edge/contract.py" in names and "emopi/train/cli.py" in names
    # every sub-package of the runtime ships, and the workstation's deploy tool sits outside it
    for package in ("vision", "vision/sources", "mqtt", "service", "service/http", "cli", "bench"):
        assert f"emopi/edge/{package}/__init__.py" in names, package
    assert "emopi/tools/deploy.py" in names
    assert not any(n.startswith("emopi/edge/") and "deploy" in n for n in names)
    assert "emopi/__init__.py" not in names  # a namespace: edge and train are separate dirs
    assert not any(n.startswith(("edge/", "train/", "tests/")) for n in names)


def test_wheel_ships_the_model_and_entry_points(wheel):
    zf = zipfile.ZipFile(wheel)
    names = zf.namelist()
    assert "emopi/edge/models/emopi-fer-int8.tflite" in names
    assert "emopi/edge/models/emopi-fer-int8.json" in names
    for asset in ("index.html", "app.js", "style.css"):  # the live view's page (`--http`)
        assert f"emopi/edge/service/http/static/{asset}" in names
    ep = next(n for n in names if n.endswith("entry_points.txt"))
    text = zf.read(ep).decode()
    assert "emopi = emopi.edge.cli:main" in text and "emopi.train.cli:register" in text
    assert "deploy = emopi.tools.deploy:register" in text


def test_wheel_installs_and_runs_in_a_fresh_venv(wheel, tmp_path):
    """Installed alone (no extras), the CLI still starts and doctor reports what is missing."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    zipfile.ZipFile(wheel).extractall(site)  # what pip does for a pure wheel, without network
    python = str(venv / "bin" / "python")

    def cli(*args):
        return subprocess.run(
            [python, "-m", "emopi.edge.cli", *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=60,
        )

    assert cli("--version").stdout.startswith("emopi ")
    assert all(name in cli("--help").stdout for name in ("quantize", "deploy", "run", "bench"))
    doctor = cli("doctor", "--broker", "127.0.0.1:1")
    assert doctor.returncode == 0, doctor.stderr
    assert any(
        line.startswith("[miss]") and " numpy " in line and "fix:" in line
        for line in doctor.stdout.splitlines()
    )


def test_editable_install_maps_to_the_source_tree():
    import emopi.edge
    import emopi.edge.vision.sources
    import emopi.tools
    import emopi.train

    assert Path(emopi.edge.__file__).resolve().parent == ROOT / "edge"
    assert Path(emopi.train.__file__).resolve().parent == ROOT / "train"
    assert Path(emopi.tools.__file__).resolve().parent == ROOT / "tools"
    sources = Path(emopi.edge.vision.sources.__file__).resolve()
    assert sources == ROOT / "edge" / "vision" / "sources" / "__init__.py"
