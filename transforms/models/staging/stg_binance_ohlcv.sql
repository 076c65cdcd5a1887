{#
  Typed, quality-gated copy of the raw Binance candles.

  Only days whose candle check passed are admitted: the raw asset's blocking check records one
  verdict per UTC day in quality.candle_verdicts (a table the check owns, written by the same
  Dagster asset, hence no separate dbt source). So staging, and everything built on it, holds
  validated days only: a bad day stays in raw, where the check reports it, and never reaches the
  marts, the features or a trading decision, whether it was checked alone or inside a range
  backfill. It is an incremental table rather than a view over all of raw so that its whole-table
  tests see validated days only.

  With the partition vars set only [min_date, max_date) is rewritten (the window is cleared first,
  in the same transaction); without them every validated day is rebuilt.
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
from {{ source('binance', 'ohlcv') }} as candles
where exists (
    select 1
    from quality.candle_verdicts as verdict
    where verdict.asset = 'raw/binance/ohlcv'
      and verdict.passed
      and verdict.partition_date = (candles.open_time at time zone 'UTC')::date
)
{% if window is not none %}
  and open_time >= {{ window.min_date }}
  and open_time < {{ window.max_date }}
{% endif %}
