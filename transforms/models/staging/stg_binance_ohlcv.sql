{#
  Typed, quality-gated copy of the raw Binance candles.

  Dagster runs this model only for partitions whose blocking candle check passed, so staging (and
  everything built on it) holds validated days only: a bad day stays in raw, where the check
  reports it, and never reaches the marts, the features or a trading decision. That is also why
  this is an incremental table rather than a view over all of raw: a view would let one bad day
  fail the whole-table tests of every later day.

  With the partition vars set only [min_date, max_date) is rewritten (the window is cleared first,
  in the same transaction); without them the whole history is rebuilt from raw, ungated.
  Casts pin the column types the marts rely on. Column names follow the common candle contract.
#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['symbol', 'interval', 'open_time'],
        on_schema_change='fail',
        indexes=[{'columns': ['symbol', 'open_time'], 'unique': false}],
        pre_hook="{{ clear_partition_window('open_time') }}",
    )
}}

{%- set window = partition_window() -%}

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
{% if window is not none %}
where open_time >= {{ window.min_date }}
  and open_time < {{ window.max_date }}
{% endif %}
