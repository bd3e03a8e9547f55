"""No silent skips: every skipped test is listed with its reason, and with
``EMOPI_STRICT_SKIPS=1`` (``.ci/run`` sets it) a skip that ``tests/allowed_skips.toml`` does
not allow fails the run.

The hooks are imported into ``tests/conftest.py``. An allow-list entry names the tests it
covers (``test``, an fnmatch pattern on the node id), the skip message it accepts
(``message``, a substring) and why that skip is acceptable (``why``)::

    [[skip]]
    test = "tests/deploy/test_unit.py::test_backoff_drop_ins_verify_on_their_systemd*"
    message = "is for systemd >= 254"
    why = "the systemd >= 254 drop-in cannot be verified on a systemd 252 host (Debian 12)"
"""

from __future__ import annotations

import fnmatch
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ALLOW_LIST = Path(__file__).with_name("allowed_skips.toml")
STRICT_ENV = "EMOPI_STRICT_SKIPS"


@dataclass(frozen=True)
class Allowed:
    test: str
    message: str
    why: str

    def covers(self, nodeid: str, reason: str) -> bool:
        return fnmatch.fnmatchcase(nodeid, self.test) and self.message in reason


@dataclass(frozen=True)
class Skip:
    nodeid: str
    reason: str


def load_allow_list(path: Path = ALLOW_LIST) -> list[Allowed]:
    """The entries of the allow-list; a malformed entry is an error, not an empty list."""
    entries = tomllib.loads(path.read_text()).get("skip", [])
    out = []
    for n, entry in enumerate(entries, 1):
        missing = {"test", "message", "why"} - set(entry)
        if missing or not all(str(entry[k]).strip() for k in ("test", "message", "why")):
            raise pytest.UsageError(f"{path} entry {n}: needs non-empty test, message and why")
        out.append(Allowed(entry["test"], entry["message"], entry["why"]))
    return out


def skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
    else:
        reason = str(longrepr)
    return reason.removeprefix("Skipped: ")


_skips: list[Skip] = []


def record(report: pytest.TestReport | pytest.CollectReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _skips.append(Skip(report.nodeid, skip_reason(report)))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    record(report)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    record(report)


def verdicts() -> list[tuple[Skip, Allowed | None]]:
    allowed = load_allow_list()
    return [(s, next((a for a in allowed if a.covers(s.nodeid, s.reason)), None)) for s in _skips]


def strict() -> bool:
    return os.environ.get(STRICT_ENV, "") not in ("", "0")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    unexpected = [s for s, allowed in verdicts() if allowed is None]
    if strict() and unexpected and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int) -> None:
    results = verdicts()
    if not results:
        return
    tr = terminalreporter
    tr.section("skips")
    for skip, allowed in results:
        tr.line(f"SKIP {skip.nodeid}: {skip.reason}")
        if allowed is None:
            tr.line("     NOT ON THE ALLOW-LIST (tests/allowed_skips.toml)", red=True)
        else:
            tr.line(f"     allowed: {allowed.why}")
    unexpected = sum(allowed is None for _, allowed in results)
    line = f"{len(results)} skip(s), {unexpected} not on the allow-list"
    if unexpected and strict():
        tr.line(f"{line}: failing the run ({STRICT_ENV}=1)", red=True, bold=True)
    else:
        tr.line(line)
