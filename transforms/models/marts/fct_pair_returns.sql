{#
  Per-pair 5m returns and realised volatility, the inputs of the signal features.

  Definitions are pinned to pandas so Python and SQL agree to the last bits:
    ret_1   = close / previous close (same symbol, by open_time) - 1   (close.pct_change())
    vol_<n> = sample standard deviation of ret_1 over the last n rows including the current
              one, NULL until n returns exist      (ret_1.rolling(n, min_periods=n).std())

  With the partition vars set, only rows inside [min_date, max_date) are written; the window
  functions still see the 288 rows before min_date (per symbol, counted in rows rather than
  time so gaps and other intervals need no special case), so a partition run writes exactly
  what a full rebuild would.
#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['symbol', 'open_time'],
        on_schema_change='fail',
        indexes=[{'columns': ['symbol', 'open_time'], 'unique': true}],
        pre_hook="{{ clear_partition_window('open_time') }}",
    )
}}

{%- set window = partition_window() -%}
{%- set lookback_rows = 288 -%}

with

{% if window is none %}
candles as (
    select symbol, open_time, close
    from {{ ref('stg_binance_ohlcv') }}
    where "interval" = '{{ var("candle_interval") }}'
),
{% else %}
in_window as (
    select symbol, open_time, close
    from {{ ref('stg_binance_ohlcv') }}
    where "interval" = '{{ var("candle_interval") }}'
      and open_time >= {{ window.min_date }}
      and open_time < {{ window.max_date }}
),

lookback as (
    select prior.symbol, prior.open_time, prior.close
    from (select distinct symbol from in_window) as symbols
    cross join lateral (
        select staged.symbol, staged.open_time, staged.close
        from {{ ref('stg_binance_ohlcv') }} as staged
        where staged.symbol = symbols.symbol
          and staged."interval" = '{{ var("candle_interval") }}'
          and staged.open_time < {{ window.min_date }}
        order by staged.open_time desc
        limit {{ lookback_rows }}
    ) as prior
),

candles as (
    select symbol, open_time, close from in_window
    union all
    select symbol, open_time, close from lookback
),
{% endif %}

returns as (
    select
        symbol,
        open_time,
        close,
        close / nullif(lag(close) over (partition by symbol order by open_time), 0) - 1 as ret_1
    from candles
),

volatility as (
    select
        symbol,
        open_time,
        close,
        ret_1,
        case
            when count(ret_1) over last_12 = 12 then stddev_samp(ret_1) over last_12
        end as vol_12,
        case
            when count(ret_1) over last_288 = 288 then stddev_samp(ret_1) over last_288
        end as vol_288
    from returns
    window
        last_12 as (partition by symbol order by open_time rows between 11 preceding and current row),
        last_288 as (partition by symbol order by open_time rows between 287 preceding and current row)
)

select
    symbol,
    open_time,
    close,
    ret_1,
    vol_12,
    vol_288
from volatility
{% if window is not none %}
where open_time >= {{ window.min_date }}
  and open_time < {{ window.max_date }}
{% endif %}
