"""The trading committee's configuration (agents, weights, risk limits, fees) as a resource."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from trading.config import CommitteeConfig, load_committee_config


class CommitteeConfigResource(dg.ConfigurableResource):
    """Points the trading job at a committee YAML; empty means the packaged default."""

    config_path: str = ""

    def load(self) -> CommitteeConfig:
        return load_committee_config(Path(self.config_path) if self.config_path else None)
