# One image for the Dagster code server, webserver and daemon of the prod deployment.
FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
RUN pip install --no-cache-dir "uv>=0.5"
WORKDIR /opt/coinswarm
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY orchestration orchestration
COPY assets assets
COPY trading trading
COPY transforms transforms
COPY cli cli
COPY workspace.yaml ./
RUN uv sync --frozen --no-dev
ENV PATH=/opt/coinswarm/.venv/bin:$PATH COINSWARM_DEPLOYMENT=prod DAGSTER_HOME=/opt/dagster/home
COPY orchestration/dagster.prod.yaml /opt/dagster/home/dagster.yaml
