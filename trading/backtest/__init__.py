"""Backtests over recorded candles through the trading job's own committee -> risk -> execution
-> paper broker path: ``data`` loads and checks OHLCV CSVs, ``engine`` runs them, ``outputs``
writes equity.csv, trades.csv, metrics.json and report.html (rendered by ``report``)."""
