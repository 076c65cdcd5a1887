{#
  The Dagster partition window arrives as --vars {min_date, max_date}: a half-open UTC window
  [min_date, max_date). Both or neither must be set; neither means "the whole history".
  Values are parsed here (not pasted into SQL) so a malformed var fails the run with a clear
  message instead of producing a wrong or injectable query. Naive timestamps and bare dates
  are read as UTC, matching the partitions definition.
#}
{% macro partition_window() -%}
    {%- set raw_min = var('min_date', none) -%}
    {%- set raw_max = var('max_date', none) -%}
    {%- if raw_min in (none, '') and raw_max in (none, '') -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if raw_min in (none, '') or raw_max in (none, '') -%}
        {{ exceptions.raise_compiler_error(
            "vars min_date and max_date must be given together (got min_date=" ~ raw_min
            ~ ", max_date=" ~ raw_max ~ ")") }}
    {%- endif -%}
    {%- set lower = coinswarm_parse_utc_timestamp('min_date', raw_min) -%}
    {%- set upper = coinswarm_parse_utc_timestamp('max_date', raw_max) -%}
    {%- if lower >= upper -%}
        {{ exceptions.raise_compiler_error(
            "empty partition window: min_date " ~ lower.isoformat() ~ " is not before max_date "
            ~ upper.isoformat()) }}
    {%- endif -%}
    {{ return({
        'min_date': "'" ~ lower.isoformat() ~ "'::timestamptz",
        'max_date': "'" ~ upper.isoformat() ~ "'::timestamptz",
    }) }}
{%- endmacro %}


{% macro coinswarm_parse_utc_timestamp(name, value) -%}
    {%- set text = value | string | trim -%}
    {%- set iso_pattern = '^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?(Z|[+-]\d{2}:?\d{2})?$' -%}
    {%- if not modules.re.match(iso_pattern, text) -%}
        {{ exceptions.raise_compiler_error(
            "var " ~ name ~ "=" ~ text ~ " is not an ISO-8601 date or timestamp "
            ~ "(expected e.g. 2018-01-12 or 2018-01-12T00:00:00+00:00)") }}
    {%- endif -%}
    {%- if text.endswith('Z') -%}
        {%- set text = text[:-1] ~ '+00:00' -%}
    {%- endif -%}
    {%- set parsed = modules.datetime.datetime.fromisoformat(text) -%}
    {%- if parsed.tzinfo is none -%}
        {%- set parsed = parsed.replace(tzinfo=modules.pytz.utc) -%}
    {%- endif -%}
    {{ return(parsed.astimezone(modules.pytz.utc)) }}
{%- endmacro %}
