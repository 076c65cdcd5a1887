"""``coinswarm control`` against a real PostgreSQL: the switches change and are audited, a change
without a reason is refused, and the output never shows the database password."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from cli.main import main
from orchestration.trading_control import TradingControl

pytestmark = pytest.mark.integration


@pytest.fixture
def prod_env(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COINSWARM_DEPLOYMENT", "prod")
    monkeypatch.setenv("COINSWARM_POSTGRES_URL", pg_url)
    return pg_url


def test_pause_kill_and_status(
    prod_env: str, pg_engine: sa.Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["control", "pause", "--reason", "venue outage", "--actor", "ops"]) == 0
    assert json.loads(capsys.readouterr().out)["paused"] is True
    assert main(["control", "kill", "--reason", "runaway orders"]) == 0
    killed = json.loads(capsys.readouterr().out)
    assert killed["kill_switch"] is True and killed["updated_by"].startswith("cli:")

    status = TradingControl(pg_engine).status()
    assert status.paused and status.kill_switch and status.kill_reason == "runaway orders"

    assert main(["control", "status"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [e["action"] for e in shown["events"]] == ["kill", "pause"]
    password = sa.make_url(prod_env).password
    if password:
        assert password not in json.dumps(shown)


def test_release_is_refused_while_killed_and_a_change_needs_a_reason(
    prod_env: str, pg_engine: sa.Engine
) -> None:
    assert main(["control", "kill", "--reason", "drill"]) == 0
    with pytest.raises(SystemExit, match="kill switch is engaged"):
        main(["control", "release-live", "--reason", "go"])
    with pytest.raises(SystemExit, match="--reason is required"):
        main(["control", "resume"])
    assert not TradingControl(pg_engine).status().live_released
