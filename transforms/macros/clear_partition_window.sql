{#
  Pre-hook for window-driven incremental models. delete+insert on the unique key only replaces
  rows that still exist upstream; clearing the whole window first (in the same transaction as
  the insert) also drops rows that disappeared from staging, so a partition re-run leaves the
  table exactly as a full rebuild of that window would.
#}
{% macro clear_partition_window(time_column) -%}
    {%- set window = partition_window() -%}
    {%- if is_incremental() and window is not none -%}
        delete from {{ this }}
        where {{ time_column }} >= {{ window.min_date }}
          and {{ time_column }} < {{ window.max_date }}
    {%- endif -%}
{%- endmacro %}
