"""``coinswarm mcp`` before it serves: it warns about a non-loopback bind, and refuses a prod
deployment without a database URL and a database it cannot open (without showing the URL's
password). Serving itself is tested over both transports in tests/orchestration/test_mcp_server.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main

PASSWORD = "Cli-t3st-Pa55word"


@pytest.fixture
def prod(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COINSWARM_DEPLOYMENT", "prod")
    monkeypatch.setenv("COINSWARM_HOME", str(tmp_path / "home"))


def test_a_non_loopback_host_is_warned_about(
    prod: None, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("COINSWARM_POSTGRES_URL", raising=False)  # stop before serving
    assert main(["mcp", "--transport", "http", "--host", "0.0.0.0"]) == 2
    err = capfd.readouterr().err
    assert "warning: --host 0.0.0.0 is not a loopback address" in err
    assert "no authentication" in err


def test_loopback_is_not_warned_about(
    prod: None, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("COINSWARM_POSTGRES_URL", raising=False)
    assert main(["mcp", "--transport", "http"]) == 2
    assert "warning" not in capfd.readouterr().err


def test_a_missing_datasets_dir_is_named(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere"
    assert main(["mcp", "--datasets-dir", str(missing)]) == 2
    assert f"--datasets-dir {missing}: no such directory" in capfd.readouterr().err


def test_prod_without_a_database_url_names_the_variable(
    prod: None, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("COINSWARM_POSTGRES_URL", raising=False)
    assert main(["mcp"]) == 2
    assert "COINSWARM_POSTGRES_URL is not set" in capfd.readouterr().err


def test_an_unreachable_database_is_reported_without_its_password(
    prod: None, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    url = f"postgresql://coinswarm:{PASSWORD}@127.0.0.1:1/coinswarm"
    monkeypatch.setenv("COINSWARM_POSTGRES_URL", url)
    assert main(["mcp", "--transport", "stdio"]) == 2
    captured = capfd.readouterr()
    assert "cannot open the deployment's PostgreSQL: OperationalError" in captured.err
    assert PASSWORD not in captured.err and PASSWORD not in captured.out
    assert captured.out == "", "nothing may reach stdout, the stdio transport's wire"
