{#
  Custom schemas are used verbatim (analytics, not <target>_analytics): other areas of the
  project read analytics.* by name, so the schema must not depend on who runs dbt.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema | trim }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
