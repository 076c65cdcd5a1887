"""Recorded websocket sessions, read back as (receive time, message) in recorded order.

Two recording formats, both in ``../shared/data``:

* ``ticks/*.gz`` (hftbacktest's collector): ``<receive time, ns> <json>`` per line, gzip;
* ``ws/cryptofeed-<VENUE>.ws.*`` (cryptofeed's recorder): ``<epoch s>: <json>`` per received
  message, plus ``wss://... <-> <epoch>`` (connected) and ``wss://... <- <epoch>: <json>``
  (sent) lines, which are not messages.

The venue comes from the recording's connection URL or, failing that, its file name.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

VENUE_HINTS = {"binance": "binance", "coinbase": "coinbase"}
"""Text in a URL or file name -> venue."""


class RecordingError(ValueError):
    """A recording that cannot be read (unknown format or venue, a garbled line)."""


class RecordedMessage(NamedTuple):
    received_ns: int
    payload: str
    line: int


def _open_text(path: Path) -> io.TextIOBase:
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    if gzipped:
        return gzip.open(path, "rt", encoding="utf-8", newline="\n")
    return open(path, encoding="utf-8", newline="\n")  # noqa: SIM115 - returned to a with


def epoch_seconds_to_ns(text: str) -> int:
    """``1633998512.0633569`` -> ns, from the digits (a float would round them)."""
    whole, _, fraction = text.strip().partition(".")
    if not whole.isdigit() or (fraction and not fraction.isdigit()) or len(fraction) > 9:
        raise ValueError(f"not an epoch time in seconds: {text!r}")
    return int(whole) * 1_000_000_000 + int(fraction.ljust(9, "0") or 0)


def parse_line(line: str, number: int) -> RecordedMessage | None:
    """One recording line -> the message it holds, or None for connection/sent/blank lines."""
    line = line.rstrip("\r\n")
    if not line.strip() or line.startswith(("ws://", "wss://", "http://", "https://")):
        return None
    head, sep, payload = line.partition(" ")
    if not sep:
        raise RecordingError(f"line {number}: no message after the receive time: {line[:80]!r}")
    try:
        if head.endswith(":"):  # cryptofeed: "<epoch s>: <json>"
            received_ns = epoch_seconds_to_ns(head[:-1])
        elif head.isdigit():  # hftbacktest: "<ns> <json>"
            received_ns = int(head)
        else:
            raise ValueError(f"unknown receive time {head[:40]!r}")
    except ValueError as exc:
        raise RecordingError(f"line {number}: {exc}") from None
    return RecordedMessage(received_ns, payload, number)


def read_recording(path: Path | str) -> Iterator[RecordedMessage]:
    path = Path(path)
    if not path.is_file():
        raise RecordingError(f"recording {path} does not exist")
    with _open_text(path) as lines:
        for number, line in enumerate(lines, start=1):
            message = parse_line(line, number)
            if message is not None:
                yield message


def recording_venue(path: Path | str) -> str:
    """The venue a recording was taken from: its connection URL, else its file name."""
    path = Path(path)
    with _open_text(path) as lines:
        first = lines.readline()
    hints = [first.split(" ", 1)[0].lower()] if first.startswith("wss://") else []
    hints.append(path.name.lower())
    for hint in hints:
        for text, venue in VENUE_HINTS.items():
            if text in hint:
                return venue
    raise RecordingError(
        f"cannot tell the venue of {path}: neither its connection URL nor its name mentions "
        f"one of {sorted(VENUE_HINTS)}; pass it explicitly"
    )
