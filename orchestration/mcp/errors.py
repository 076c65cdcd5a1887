"""The failures the MCP server anticipates, each with a message fit to show an assistant.

The server turns these into MCP errors (a bad argument into ``INVALID_PARAMS`` for a resource,
an ``is_error`` tool result for a tool). Anything else is a crash: the SDK answers with a generic
message and the traceback stays in the server's log, so a driver's error text, which can carry
connection details, never reaches a client.
"""

from __future__ import annotations


class InvalidArgument(ValueError):
    """An argument that fails validation; the message names it and says what was expected."""


class NotFound(LookupError):
    """A well-formed argument naming something that does not exist (a pair without candles, an
    unknown report); the message lists what does exist when that list is short."""


class MissingTable(RuntimeError):
    """A table the answer needs does not exist yet in this database (e.g. dbt's
    ``analytics.stg_binance_ohlcv`` before the pipeline first ran)."""

    def __init__(self, table: str, hint: str) -> None:
        super().__init__(f"{table} does not exist in this database yet: {hint}")
        self.table = table


class Busy(RuntimeError):
    """A bounded resource (the one backtest slot) is taken; try again later."""
