"""Asset groups: the stages of the flow as the UI shows them, and what jobs select."""

INGEST_GROUP = "ingest"
TRANSFORM_GROUP = "transform"
SIGNALS_GROUP = "signals"
TRADING_GROUP = "trading"
MEMORY_GROUP = "memory"
BACKTEST_GROUP = "backtests"
TICKS_GROUP = "ticks"
