{#
  Typed view over the raw Binance candles: casts pin the column types the marts rely on, so a
  change in the ingest table's DDL shows up here rather than as silently different arithmetic.
  Column names follow the common candle contract (including "interval", which needs quoting).
  The raw primary key already guarantees one row per (symbol, interval, open_time).
#}
select
    cast(symbol as text) as symbol,
    cast("interval" as text) as "interval",
    cast(open_time as timestamptz) as open_time,
    cast(open as double precision) as open,
    cast(high as double precision) as high,
    cast(low as double precision) as low,
    cast(close as double precision) as close,
    cast(volume as double precision) as volume,
    cast(ingested_at as timestamptz) as ingested_at
from {{ source('binance', 'ohlcv') }}
