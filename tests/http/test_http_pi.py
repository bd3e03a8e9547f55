"""The Pi's temperature and throttling, read from files and vcgencmd as the firmware gives them."""

from __future__ import annotations

import os
import stat

from emopi.edge.service.http.pi import cpu_temperature, decode_throttled, throttled_word


def test_temperature_from_the_thermal_zone(tmp_path) -> None:
    zone = tmp_path / "temp"
    zone.write_text("48312\n")
    assert cpu_temperature(zone) == 48.3
    assert cpu_temperature(tmp_path / "missing") is None
    zone.write_text("n/a\n")
    assert cpu_temperature(zone) is None


def test_throttled_bits_now_and_since_boot() -> None:
    assert decode_throttled(0x50005) == {
        "raw": "0x50005",
        "now": ["under_voltage", "throttled"],
        "since_boot": ["under_voltage", "throttled"],
    }
    assert decode_throttled(0x80000) == {"raw": "0x80000", "now": [], "since_boot": [
        "soft_temp_limit"
    ]}  # fmt: skip
    assert decode_throttled(0)["now"] == [] and decode_throttled(0)["since_boot"] == []


def test_throttled_word_from_sysfs_then_vcgencmd(tmp_path, monkeypatch) -> None:
    sysfs = tmp_path / "get_throttled"
    sysfs.write_text("50005\n")  # the firmware file holds hex without 0x
    assert throttled_word(sysfs) == 0x50005
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    assert throttled_word(tmp_path / "absent") is None  # neither: not a Pi
    vcgencmd = bin_dir / "vcgencmd"
    vcgencmd.write_text("#!/bin/sh\necho throttled=0x20002\n")
    vcgencmd.chmod(vcgencmd.stat().st_mode | stat.S_IXUSR)
    assert os.access(vcgencmd, os.X_OK)
    assert throttled_word(tmp_path / "absent") == 0x20002
