{#
  Typed view over FRED observations. Missing values (FRED's ".") stay NULL: whether to
  forward-fill is a modelling choice for the consumer, not something staging should decide.
#}
select
    cast(series_id as text) as series_id,
    cast(observation_date as date) as observation_date,
    cast(value as double precision) as value,
    cast(ingested_at as timestamptz) as ingested_at
from {{ source('fred', 'observations') }}
