"""Checks on the memory the trading job commits (memory/memories and memory/patterns are
written by ``assets.decisions.trading_session``, in the same transaction as its decisions).

``memories_committed_by_quorum`` re-reads the day's proposals and votes from PostgreSQL and
confirms the rule held: every live memory had at least the configured number of approving
votes, every committed proposal has its memory (or was evicted since), and no rejected
proposal left a memory behind.
"""

import dagster as dg
import sqlalchemy as sa

from assets.decisions import MEMORIES
from orchestration.resources.committee import CommitteeConfigResource
from orchestration.resources.postgres import PostgresStoreResource

_QUORUM_BREACHES = sa.text(
    """
    select
      (select count(*) from memory.memories m
        where m.namespace = :namespace and m.matured_at >= :start and m.matured_at < :end
          and (select count(*) from memory.votes v where v.key = m.key and v.approve) < :required)
        as without_quorum,
      (select count(*) from memory.proposals p
        where p.namespace = :namespace and p.matured_at >= :start and p.matured_at < :end
          and p.status = 'committed'
          and not exists (select 1 from memory.memories m where m.key = p.key))
        as committed_but_missing,
      (select count(*) from memory.proposals p join memory.memories m using (key)
        where p.namespace = :namespace and p.matured_at >= :start and p.matured_at < :end
          and p.status <> 'committed')
        as remembered_but_not_committed,
      (select count(*) from memory.proposals p
        where p.namespace = :namespace and p.matured_at >= :start and p.matured_at < :end)
        as proposals
    """
)


@dg.asset_check(
    asset=MEMORIES,
    blocking=False,
    description=(
        "Every memory of the day was committed by the quorum: enough approving votes, no "
        "committed proposal without its memory, no refused proposal remembered."
    ),
)
def memories_committed_by_quorum(
    context: dg.AssetCheckExecutionContext,
    postgres: PostgresStoreResource,
    committee: CommitteeConfigResource,
) -> dg.AssetCheckResult:
    memory = committee.load().memory
    window = context.partition_time_window
    with postgres.get_engine().connect() as conn:
        row = (
            conn.execute(
                _QUORUM_BREACHES,
                {
                    "namespace": memory.namespace,
                    "start": window.start,
                    "end": window.end,
                    "required": memory.quorum,
                },
            )
            .mappings()
            .one()
        )
    breaches = {k: int(v) for k, v in row.items() if k != "proposals"}
    failures = [f"{name}: {count}" for name, count in breaches.items() if count]
    return dg.AssetCheckResult(
        passed=not failures,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"proposals": int(row["proposals"]), **breaches, "required": memory.quorum},
        description="; ".join(failures) or None,
    )


memory_checks = [memories_committed_by_quorum]
