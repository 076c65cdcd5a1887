"""trading/ is a pure library: importing all of it must not pull in Dagster or the layers above."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import trading

CHECK = """
import importlib, pkgutil, sys
import trading
for module in pkgutil.walk_packages(trading.__path__, "trading."):
    importlib.import_module(module.name)
leaked = sorted(m for m in sys.modules if m.split(".")[0] in {"dagster", "orchestration", "assets"})
assert not leaked, leaked
"""


def test_importing_every_trading_module_loads_no_dagster_orchestration_or_assets() -> None:
    root = Path(trading.__file__).resolve().parents[1]
    completed = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=root, capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr
