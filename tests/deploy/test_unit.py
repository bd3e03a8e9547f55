"""systemd/emopi.service: `systemd-analyze verify` clean, security exposure <= 2.5, and the
settings the camera and the issue require."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_helpers import ROOT

UNIT = ROOT / "systemd" / "emopi.service"
ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"

needs_analyze = pytest.mark.skipif(
    not Path(ANALYZE).exists(), reason="systemd-analyze is not installed (apt install systemd)"
)


def systemd_version() -> int:
    out = subprocess.run([ANALYZE, "--version"], capture_output=True, text=True, timeout=30)
    return int(re.match(r"systemd (\d+)", out.stdout).group(1))


def settings(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def verify(unit_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [ANALYZE, "verify", str(unit_dir / "emopi.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )


def unit_copy(tmp_path: Path, dropin: str | None) -> Path:
    """The unit with ExecStart pointing at a binary that exists here (verify checks it)."""
    text = UNIT.read_text().replace("ExecStart=/opt/emopi/bin/emopi", "ExecStart=/bin/true")
    (tmp_path / "emopi.service").write_text(text)
    if dropin:
        (tmp_path / "emopi.service.d").mkdir()
        shutil.copy(ROOT / "systemd" / dropin, tmp_path / "emopi.service.d" / "10-backoff.conf")
    return tmp_path


@needs_analyze
def test_unit_verifies_without_any_warning(tmp_path):
    result = verify(unit_copy(tmp_path, None))
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stderr


@needs_analyze
@pytest.mark.parametrize(
    ("dropin", "min_version"), [("backoff-fixed.conf", 0), ("backoff-steps.conf", 254)]
)
def test_backoff_drop_ins_verify_on_their_systemd(tmp_path, dropin, min_version):
    if systemd_version() < min_version:
        pytest.skip(f"{dropin} is for systemd >= {min_version} (install.sh picks by version)")
    result = verify(unit_copy(tmp_path, dropin))
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stderr


@needs_analyze
def test_exposure_is_at_most_2_5():
    result = subprocess.run(
        [ANALYZE, "security", "--offline=true", "--threshold=25", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    level = re.search(r"Overall exposure level for emopi.service: (\d+\.\d)", result.stdout)
    assert level, result.stdout + result.stderr
    assert float(level.group(1)) <= 2.5
    assert result.returncode == 0  # --threshold=25 is 2.5 on systemd's 0..100 scale


def test_unit_has_the_required_settings():
    s = settings(UNIT.read_text())
    one = {k: v[-1] for k, v in s.items()}
    assert one["Type"] == "notify" and one["NotifyAccess"] == "main"
    assert one["Restart"] == "on-failure" and "WatchdogSec" in one and "RestartSec" in one
    assert one["User"] == "emopi" and one["SupplementaryGroups"] == "video"
    assert one["StateDirectory"] == "emopi" and one["ConfigurationDirectory"] == "emopi"
    assert one["ExecStart"] == "/opt/emopi/bin/emopi run --config /etc/emopi/emopi.toml"
    for key in ("NoNewPrivileges", "PrivateTmp", "ProtectHome", "MemoryDenyWriteExecute"):
        assert one[key] == "yes", key
    assert one["ProtectSystem"] == "strict"
    # The camera: no PrivateDevices, but an allow-list with every node libcamera opens.
    assert "PrivateDevices" not in s and one["DevicePolicy"] == "closed"
    allowed = set(s["DeviceAllow"])
    assert {"char-video4linux rw", "char-media rw", "char-dma_heap rw"} <= allowed
    assert "AF_NETLINK" in one["RestrictAddressFamilies"]  # libcamera's udev monitor
    assert one["SystemCallArchitectures"] == "native"


def test_every_setting_is_documented():
    """Each hardening line has a comment above it (directly or for its group)."""
    lines = UNIT.read_text().splitlines()
    undocumented = []
    for i, line in enumerate(lines):
        if "=" not in line or line.startswith(("#", "[", "Description=")):
            continue
        j = i - 1
        while j >= 0 and "=" in lines[j] and not lines[j].startswith("#"):
            j -= 1  # settings grouped under one comment
        if j < 0 or not lines[j].startswith("#"):
            undocumented.append(line)
    assert not undocumented


MDWE_PROBE = """
import ctypes, mmap, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN (Linux >= 6.3)
    print("no-mdwe"); sys.exit(0)
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    sys.exit("W+X mapping was allowed: MDWE is not in force")
except PermissionError:
    pass
import numpy as np, cv2
from ai_edge_litert.interpreter import Interpreter
from emopi.edge.vision.haar import find_cascade
from emopi.edge.models import DEFAULT_MODEL
gray = np.zeros((240, 320), np.uint8)
cv2.CascadeClassifier(str(find_cascade())).detectMultiScale(gray, 1.1, 5)
it = Interpreter(model_path=str(DEFAULT_MODEL), num_threads=2)  # XNNPACK delegate included
it.allocate_tensors()
inp = it.get_input_details()[0]
it.set_tensor(inp["index"], np.zeros(inp["shape"], inp["dtype"]))
it.invoke()
print("ok", it.get_tensor(it.get_output_details()[0]["index"]).shape)
"""


def test_inference_stack_runs_under_memory_deny_write_execute():
    """MemoryDenyWriteExecute=yes is safe: OpenCV Haar + LiteRT/XNNPACK inference run in a
    process where the kernel refuses writable-executable memory (PR_SET_MDWE, the same rule)."""
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("cv2")
    from emopi.edge.models import DEFAULT_MODEL

    if not DEFAULT_MODEL.is_file():
        pytest.skip(f"the shipped model {DEFAULT_MODEL.name} is not in this tree yet")
    out = subprocess.run(
        [sys.executable, "-c", MDWE_PROBE], capture_output=True, text=True, timeout=120
    )
    if out.stdout.strip() == "no-mdwe":
        pytest.skip("this kernel has no PR_SET_MDWE (Linux < 6.3)")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok ("), out.stdout
