"""The shell scripts parse, and shellcheck finds nothing in them (when it is installed)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from deploy_helpers import ROOT

SCRIPTS = sorted([*ROOT.glob("deploy/*.sh"), *ROOT.glob("deploy/firstboot/*.sh")])


def test_all_scripts_are_found():
    names = {p.name for p in SCRIPTS}
    assert {"install.sh", "verify-arm64.sh", "emopi-firstboot.sh", "emopi-firstrun.sh"} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_parses(script):
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_shellcheck_is_clean():
    result = subprocess.run(
        ["shellcheck", *map(str, SCRIPTS)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout
