"""``coinswarm stream``: replay, a live run stopped by SIGTERM, and the errors it names."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from pathlib import Path

import orjson
import pandas as pd
import pytest

from assets.ingest.streams import binance
from cli.main import main
from orchestration.resources.ticks import ParquetTickStore
from orchestration.streaming.replay import read_recording
from tests.support.streaming import (
    BTC_TICKS,
    CRYPTOFEED_BINANCE,
    CRYPTOFEED_COINBASE,
    HOLD,
    ScriptedVenue,
    free_port,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SUMMARY = re.compile(
    r"stream summary: messages=(?P<messages>[\d,]+) ticks=[\d,]+ ticks_written=(?P<written>[\d,]+)"
    r" duplicates_dropped=(?P<duplicates>[\d,]+) gaps=(?P<gaps>[\d,]+) .*"
    r"malformed=(?P<malformed>[\d,]+)"
)


def _summary(text: str) -> dict[str, int]:
    match = SUMMARY.search(text)
    assert match, f"no summary line in {text!r}"
    return {k: int(v.replace(",", "")) for k, v in match.groupdict().items()}


def test_replay_as_fast_as_possible(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "stream", "--replay", str(shared_data / CRYPTOFEED_BINANCE),
            str(shared_data / CRYPTOFEED_COINBASE), "--as-fast-as-possible",
            "--store", "parquet", "--parquet-root", str(tmp_path / "ticks"),
            "--gaps-file", str(tmp_path / "gaps.jsonl"), "--quiet",
        ]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert _summary(out) == {
        "messages": 266 + 9_945,
        "written": 300,
        "duplicates": 0,
        "gaps": 0,
        "malformed": 0,
    }
    store = ParquetTickStore(tmp_path / "ticks")
    nkn = store.read("binance", "NKN/USDT", "2021-10-11", "2021-10-13")
    assert len(nkn) == 75
    assert not (tmp_path / "gaps.jsonl").exists()


def test_usage_errors_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["stream", "--symbols", "kraken:BTC/USD"]) == 64
    assert "'kraken' is not among --venue ['binance']" in capsys.readouterr().err
    assert main(["stream", "--symbols", "BTCUSDT"]) == 64
    assert "binance: symbol 'BTCUSDT' is not in the venue-neutral" in capsys.readouterr().err
    for name in ("COINSWARM_INFLUX_URL", "COINSWARM_INFLUX_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    assert main(["stream", "--store", "influx"]) == 64
    assert "needs COINSWARM_INFLUX_URL, COINSWARM_INFLUX_TOKEN" in capsys.readouterr().err
    unknown = tmp_path / "session.txt"
    unknown.write_text("1 {}\n")
    assert main(["stream", "--replay", str(unknown)]) == 64
    assert "cannot tell the venue" in capsys.readouterr().err


def test_an_unreachable_store_exits_naming_it(
    shared_data: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for name, value in {
        "COINSWARM_INFLUX_URL": url, "COINSWARM_INFLUX_TOKEN": "t",
        "COINSWARM_INFLUX_ORG": "coinswarm", "COINSWARM_INFLUX_BUCKET": "ticks",
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    code = main(
        ["stream", "--replay", str(shared_data / BTC_TICKS), "--as-fast-as-possible",
         "--store", "influx", "--batch-size", "100", "--buffer-limit", "500", "--quiet"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 2
    assert f"InfluxTickStore(url='{url}', org='coinswarm', bucket='ticks')" in captured.err
    assert re.search(r"[\d,]+ received ticks were not stored", captured.err)
    assert _summary(captured.out)["written"] == 0


@pytest.mark.asyncio
async def test_sigterm_flushes_the_buffer_and_prints_the_summary(
    shared_data: Path, tmp_path: Path
) -> None:
    """A live run against a local venue; the ticks sit in the buffer (long linger) until the
    SIGTERM, which must flush them to the store before the process exits."""
    session = read_recording(shared_data / BTC_TICKS)
    frames = [m.payload for _, m in zip(range(400), session, strict=False)][10:]
    # End on a trade that reveals a gap: once the gap is on file, every frame was handled.
    last_trade = max(i for i, f in enumerate(frames) if '"e":"trade"' in f)
    previous = max(i for i, f in enumerate(frames[:last_trade]) if '"e":"trade"' in f)
    sent = frames[:previous] + [frames[last_trade]]
    venue = ScriptedVenue([[*sent, HOLD]])
    gaps = tmp_path / "gaps.jsonl"
    async with venue.running():
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cli.main", "stream", "--url", f"binance={venue.url}",
            "--symbols", "BTC/USDT", "--store", "parquet",
            "--parquet-root", str(tmp_path / "ticks"), "--gaps-file", str(gaps),
            "--linger-ms", "600000", "--max-connections", "1",
            cwd=REPO_ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "COINSWARM_HOME": str(tmp_path / "home")},
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not gaps.exists():
            assert process.returncode is None and time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert not list((tmp_path / "ticks").rglob("*.parquet")), "still buffered"
        process.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)

    assert process.returncode == 0, err.decode()
    assert "SIGTERM: stopping" in err.decode()
    expected = [t for f in sent for t in binance.parse(f, 0).ticks]
    summary = _summary(out.decode())
    assert summary["messages"] == len(sent)
    assert summary["written"] == len(expected) and summary["gaps"] == 1
    stored = ParquetTickStore(tmp_path / "ticks")
    trades = stored.read("binance", "BTC/USDT", "2024-08-08", "2024-08-09", kind="trade")
    assert sorted(trades["trade_id"]) == sorted(t.trade_id for t in expected if t.kind == "trade")
    gap = orjson.loads(gaps.read_text())
    first_skipped = orjson.loads(frames[previous])["data"]["t"]
    assert (gap["stream"], gap["first_missing"]) == ("trade", first_skipped)
    tops = pd.concat(
        stored.read("binance", "BTC/USDT", day, day + pd.Timedelta(days=1), kind="book_top")
        for day in [pd.Timestamp.now(tz="UTC").floor("D") + pd.Timedelta(days=d) for d in (-1, 0)]
    )
    assert len(tops) == sum(t.kind == "book_top" for t in expected)
