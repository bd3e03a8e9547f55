"""``--random-order[=SEED]``: run the tests in a shuffled order to prove they are independent.

Modules are shuffled, then the tests within each module (module-scoped fixtures are still set
up once per module). The seed is printed in the header; pass it back to repeat an order.
``.ci/run`` runs the suite this way. Imported into ``tests/conftest.py``.
"""

from __future__ import annotations

import random

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--random-order",
        nargs="?",
        const="random",
        default=None,
        metavar="SEED",
        help="shuffle modules and the tests in each module (SEED repeats an order)",
    )


def order_seed(config: pytest.Config) -> int | None:
    value = config.getoption("--random-order")
    if value is None:
        return None
    if value == "random":
        seed = random.SystemRandom().randrange(10**6)
        config.option.random_order = str(seed)  # the header and the reruns see the same seed
        return seed
    return int(value)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    seed = order_seed(config)
    if seed is None:
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:  # also under -q, where the header is not shown
        reporter.write_line(f"random order: --random-order={seed}")
    rng = random.Random(seed)
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::")[0], []).append(item)
    groups = list(modules.values())
    rng.shuffle(groups)
    for group in groups:
        rng.shuffle(group)
    items[:] = [item for group in groups for item in group]
