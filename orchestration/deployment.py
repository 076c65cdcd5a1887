"""The one place that decides which deployment this process runs as.

``COINSWARM_DEPLOYMENT=local`` (the default) runs everything on embedded stores under
``COINSWARM_HOME`` (default ``./.coinswarm``) with replayed source data: no server, no network,
no API key. ``prod`` reads server URLs and secrets from the environment at run time through
``dg.EnvVar``. Nothing else in the code base branches on the deployment.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path


class Deployment(StrEnum):
    LOCAL = "local"
    PROD = "prod"


def current_deployment() -> Deployment:
    raw = os.environ.get("COINSWARM_DEPLOYMENT", Deployment.LOCAL.value).strip().lower()
    try:
        return Deployment(raw)
    except ValueError:
        allowed = ", ".join(d.value for d in Deployment)
        raise ValueError(
            f"COINSWARM_DEPLOYMENT={raw!r} is not a deployment; expected one of: {allowed}"
        ) from None


def coinswarm_home() -> Path:
    """Root of the embedded stores, reports and the local Dagster instance."""
    return Path(os.environ.get("COINSWARM_HOME", ".coinswarm")).resolve()


def dagster_home() -> Path:
    """The Dagster instance's folder: ``DAGSTER_HOME``, else ``<COINSWARM_HOME>/dagster``."""
    return Path(os.environ.get("DAGSTER_HOME") or coinswarm_home() / "dagster")


PROJECT_ROOT = Path(__file__).resolve().parent.parent
