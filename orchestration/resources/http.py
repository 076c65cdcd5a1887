"""HTTP plumbing shared by every REST source: one retry policy, one error vocabulary.

Sources are written against the small `JsonClient` protocol so the same fetch/parse code runs on
the live venue (`HttpJsonClient`) and on its recorded or synthetic twin (the replay clients).
The errors say which venue, which path, which HTTP status and how many attempts, because the
person reading them is usually looking at a failed backfill in the Dagster UI, not at a debugger.

Retry rules, the same for every venue: 5xx, timeouts and connection failures are retried with
exponential backoff and jitter; 429 (and Binance's 418 ban) wait for the server's Retry-After
(seconds or an HTTP-date, capped); every other 4xx is the caller's fault and fails at once.
The jitter comes from a generator seeded by venue and path, so a rerun waits the same way.
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar, runtime_checkable

import dagster as dg
import httpx
import tenacity
from pydantic import Field, PrivateAttr

_T = TypeVar("_T")

RATE_LIMIT_STATUSES = frozenset({418, 429})
"""429 is the standard "slow down"; Binance answers 418 once it has banned the IP."""

SECRET_PARAM_NAMES = frozenset(
    {
        "api_key",
        "apikey",
        "key",
        "token",
        "access_token",
        "secret",
        "signature",
        "password",
        "passphrase",
    }
)

_BODY_SNIPPET_CHARS = 300
_SECRET_IN_URL = re.compile(
    r"(?i)([?&;](?:" + "|".join(sorted(SECRET_PARAM_NAMES)) + r")=)[^&#\s\"'>]*"
)


# -- errors ------------------------------------------------------------------------------------


class SourceError(Exception):
    """A source could not deliver: names the venue, the path, the status and the attempts."""

    def __init__(
        self,
        problem: str,
        *,
        venue: str,
        path: str,
        status: int | None = None,
        attempts: int | None = None,
    ) -> None:
        self.problem = problem
        self.venue = venue
        self.path = path
        self.status = status
        self.attempts = attempts
        details = []
        if status is not None:
            details.append(f"HTTP {status}")
        if attempts is not None:
            details.append(f"after {attempts} attempt{'s' if attempts != 1 else ''}")
        suffix = f" ({', '.join(details)})" if details else ""
        super().__init__(f"{venue} GET {path}: {problem}{suffix}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments defeat Exception's default pickling (multiprocess executors).
        return (
            _rebuild_source_error,
            (type(self), self.problem, self.venue, self.path, self.status, self.attempts),
        )


def _rebuild_source_error(
    cls: type[SourceError],
    problem: str,
    venue: str,
    path: str,
    status: int | None,
    attempts: int | None,
) -> SourceError:
    return cls(problem, venue=venue, path=path, status=status, attempts=attempts)


class RateLimitedError(SourceError):
    """The venue kept rate limiting us (429/418) until the attempts ran out."""


class UpstreamError(SourceError):
    """The venue refused the request (4xx) or kept failing (5xx, timeouts, connection errors)."""


class PayloadError(SourceError):
    """The venue answered, but the body is not what its API documents (not JSON, wrong shape)."""


class MissingApiKeyError(SourceError):
    """A source that needs a key was asked to run without one: a named failure, never empty data."""


class OutOfWindowError(SourceError):
    """The venue can only answer for a time other than the one asked (a live API serving only
    the present, or a listing that no longer reaches back that far): nothing to store."""


# -- the client protocol -----------------------------------------------------------------------


@runtime_checkable
class JsonClient(Protocol):
    """What a REST source needs from a client: GET a path, get the decoded JSON body back."""

    @property
    def venue(self) -> str: ...

    @property
    def synthetic(self) -> bool: ...

    def get_json(self, path: str, params: Mapping[str, str | int] | None = None) -> Any: ...


@dataclass(frozen=True)
class TimedAnswer:
    """A decoded body and the moment it describes (when the venue was asked, for a live client)."""

    body: Any
    taken_at: datetime


@runtime_checkable
class TimedJsonClient(JsonClient, Protocol):
    """For endpoints whose answer depends on when they are asked: order books, market-wide
    snapshots, newest-first listings, "all history so far".

    A live client answers as of now, whatever ``at`` says, and reports when that was; a replay
    answers as of ``at``, so replaying a partition gives the same answer every time. Sources
    decide from ``taken_at`` whether the answer belongs to the partition they are filling.
    """

    def get_json_at(
        self, path: str, params: Mapping[str, str | int] | None = None, *, at: datetime
    ) -> TimedAnswer: ...


class AnswerTally:
    """One asset run's view of a client: passes calls through and counts synthetic answers.

    Replay clients that mix recorded and synthetic data answer ``is_synthetic_answer(path,
    params)`` per request; other clients are synthetic or not as a whole (``synthetic``). The
    tally lives for one run only, so the resource itself stays stateless.
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self.answers = 0
        self.synthetic_answers = 0

    @property
    def venue(self) -> str:
        return self.client.venue

    @property
    def synthetic(self) -> bool:
        """Whether anything this run received was synthetic."""
        if hasattr(self.client, "is_synthetic_answer"):
            return self.synthetic_answers > 0
        return bool(getattr(self.client, "synthetic", False))

    def _count(self, path: str, params: Mapping[str, str | int] | None) -> None:
        self.answers += 1
        judge = getattr(self.client, "is_synthetic_answer", None)
        if judge is not None and judge(path, params or {}):
            self.synthetic_answers += 1

    def get_json(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:
        body = self.client.get_json(path, params)
        self._count(path, params)
        return body

    def get_json_at(
        self, path: str, params: Mapping[str, str | int] | None = None, *, at: datetime
    ) -> TimedAnswer:
        answer = self.client.get_json_at(path, params, at=at)
        self._count(path, params)
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


# -- redaction -----------------------------------------------------------------------------------


def is_secret_param(name: str) -> bool:
    return name.lower() in SECRET_PARAM_NAMES


def redact_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Params safe to log: secret-looking values replaced by ``***``."""
    return {k: ("***" if is_secret_param(k) else v) for k, v in (params or {}).items()}


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove secret query values from URLs in ``text`` and any known secret value anywhere."""
    text = _SECRET_IN_URL.sub(r"\1***", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


class RedactSecretsFilter(logging.Filter):
    """Scrubs secret query parameters from log records.

    httpx logs every request URL at INFO, query string included; FRED (and other key-in-URL APIs)
    put the API key there, so without this filter the key would land in the run logs.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is not ours to fix; let logging report it
            return True
        redacted = redact_text(message)
        if redacted != message:
            record.msg = redacted
            record.args = None
        return True


_REDACT_FILTER = RedactSecretsFilter()
for _logger_name in ("httpx", "httpcore"):
    _logger = logging.getLogger(_logger_name)
    if not any(isinstance(f, RedactSecretsFilter) for f in _logger.filters):
        _logger.addFilter(_REDACT_FILTER)


# -- retry policy ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how often to try; shared by the JSON client and the FRED client."""

    max_attempts: int = 5
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    retry_after_max_s: float = 60.0

    def backoff_s(self, attempt: int, rng: random.Random) -> float:
        """Equal jitter: half the exponential step fixed, half random (never a zero wait)."""
        step = min(self.backoff_max_s, self.backoff_initial_s * (2 ** max(attempt - 1, 0)))
        return step / 2 + rng.uniform(0, step / 2)


class TransientFailure(Exception):
    """One failed attempt worth another try; converted to a public error when attempts run out.

    Raised inside an attempt (by the HTTP layer, or by a client's payload check when a venue
    signals "slow down" in a 200 body, as Kraken does) to ask for another try.
    """

    def __init__(
        self,
        problem: str,
        status: int | None = None,
        retry_after_s: float | None = None,
        rate_limited: bool = False,
    ):
        super().__init__(problem)
        self.problem = problem
        self.status = status
        self.retry_after_s = retry_after_s
        self.rate_limited = rate_limited or status in RATE_LIMIT_STATUSES


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP-date; None if absent."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


def _body_snippet(response: httpx.Response, secrets: Iterable[str]) -> str:
    text = response.text.strip().replace("\n", " ")
    if len(text) > _BODY_SNIPPET_CHARS:
        text = text[:_BODY_SNIPPET_CHARS] + "..."
    return redact_text(text, secrets) or "<empty body>"


def run_with_retries(
    attempt: Callable[[], _T],
    *,
    venue: str,
    path: str,
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
) -> _T:
    """Call ``attempt`` until it returns, retrying while it raises :class:`TransientFailure`.

    Waits a TransientFailure's ``retry_after_s`` (capped) when it has one, else the policy's
    jittered backoff. When attempts run out the last failure becomes a RateLimitedError (429/418)
    or an UpstreamError; any other exception from ``attempt`` propagates at once.
    """
    log = dg.get_dagster_logger()
    rng = random.Random(zlib.crc32(f"{venue} {path}".encode()))

    def wait(state: tenacity.RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome else None
        if isinstance(failure, TransientFailure) and failure.retry_after_s is not None:
            return min(failure.retry_after_s, policy.retry_after_max_s)
        return policy.backoff_s(state.attempt_number, rng)

    def before_sleep(state: tenacity.RetryCallState) -> None:
        failure = state.outcome.exception() if state.outcome else None
        waiting = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "%s GET %s attempt %d/%d failed (%s); retrying in %.2fs",
            venue,
            path,
            state.attempt_number,
            policy.max_attempts,
            failure,
            waiting,
        )

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(policy.max_attempts),
        wait=wait,
        retry=tenacity.retry_if_exception_type(TransientFailure),
        before_sleep=before_sleep,
        sleep=sleep,
        reraise=True,
    )
    try:
        return retrying(attempt)
    except TransientFailure as failure:
        error_type = RateLimitedError if failure.rate_limited else UpstreamError
        raise error_type(
            f"gave up: {failure.problem}",
            venue=venue,
            path=path,
            status=failure.status,
            attempts=policy.max_attempts,
        ) from None


def send_with_retries(
    http: httpx.Client,
    url: str,
    params: Mapping[str, str | int] | None,
    *,
    venue: str,
    path: str,
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
    accept: Callable[[httpx.Response], None] | None = None,
    secrets: Iterable[str] = (),
) -> httpx.Response:
    """GET ``url`` under the retry policy; return the first accepted 2xx response or raise a
    SourceError.

    ``accept`` looks at a 2xx response inside the attempt: it may raise TransientFailure (retry)
    or a SourceError (give up now). ``secrets`` are extra values (say, a key sent in a header)
    redacted from every message besides the secret-looking query parameters.
    """
    log = dg.get_dagster_logger()
    secrets = [*secrets, *(str(v) for k, v in (params or {}).items() if is_secret_param(k))]

    # httpx's params= replaces a URL's query string; FRED URLs arrive with one, so merge.
    target = httpx.URL(url)
    if params:
        target = target.copy_merge_params({k: str(v) for k, v in params.items()})

    def attempt() -> httpx.Response:
        try:
            response = http.get(target)
        except httpx.TimeoutException as exc:
            raise TransientFailure(f"timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            problem = redact_text(f"connection failed: {type(exc).__name__}: {exc}", secrets)
            raise TransientFailure(problem) from None
        status = response.status_code
        if status in RATE_LIMIT_STATUSES:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise TransientFailure(
                f"rate limited: {_body_snippet(response, secrets)}", status, retry_after
            )
        if status >= 500:
            raise TransientFailure(f"server error: {_body_snippet(response, secrets)}", status)
        if status >= 400:
            raise UpstreamError(
                f"request rejected: {_body_snippet(response, secrets)}",
                venue=venue,
                path=path,
                status=status,
                attempts=1,
            )
        if status >= 300:
            raise UpstreamError(
                f"unexpected redirect to {response.headers.get('Location', '?')}",
                venue=venue,
                path=path,
                status=status,
            )
        if accept is not None:
            accept(response)
        return response

    log.debug("%s GET %s params=%s", venue, path, redact_params(params))
    return run_with_retries(attempt, venue=venue, path=path, policy=policy, sleep=sleep)


# -- the live JSON client ------------------------------------------------------------------------


def join_url(base_url: str, path: str) -> str:
    return base_url.rstrip("/") + "/" + path.lstrip("/")


class HttpJsonClient(dg.ConfigurableResource):
    """Live REST client for one venue: timeouts, retries with backoff, Retry-After, clear errors.

    Venues that want a key in a header (NewsAPI's ``X-Api-Key``) set ``api_key_header`` and
    ``api_key_env``: a request without the key is then a MissingApiKeyError naming the variable,
    and the key is redacted from every message. Venues that report errors inside a 200 body
    (Kraken) override :meth:`check_payload`.
    """

    venue: str = Field(description="Venue name used in logs and errors, e.g. 'binance'.")
    base_url: str = Field(description="Root URL of the venue's REST API.")
    timeout_s: float = Field(default=10.0, description="Per-request timeout in seconds.")
    max_attempts: int = Field(default=5, ge=1, description="Attempts before giving up.")
    backoff_initial_s: float = Field(default=0.5, ge=0, description="First retry backoff.")
    backoff_max_s: float = Field(default=30.0, ge=0, description="Longest retry backoff.")
    retry_after_max_s: float = Field(
        default=60.0, ge=0, description="Cap on a server's Retry-After wait."
    )
    user_agent: str = Field(
        default="coinswarm/0.1", description="User-Agent header (Reddit asks for a unique one)."
    )
    api_key: str = Field(
        default="",
        repr=False,
        description="Key sent in api_key_header; pass dg.EnvVar(api_key_env), never a literal.",
    )
    api_key_header: str = Field(
        default="", description="Header that carries the key; empty: the venue needs no key."
    )
    api_key_env: str = Field(
        default="", description="Environment variable the key comes from, named in errors."
    )

    _http: httpx.Client | None = PrivateAttr(default=None)

    @property
    def synthetic(self) -> bool:
        return False

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.max_attempts,
            backoff_initial_s=self.backoff_initial_s,
            backoff_max_s=self.backoff_max_s,
            retry_after_max_s=self.retry_after_max_s,
        )

    def _client(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(
                timeout=httpx.Timeout(self.timeout_s),
                headers={"User-Agent": self.user_agent, "Accept": "application/json"},
            )
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close()

    def _key_headers(self, path: str) -> dict[str, str]:
        if not self.api_key_header:
            return {}
        key = (self.api_key or "").strip()
        if not key:
            name = self.api_key_env or f"the {self.venue} API key"
            raise MissingApiKeyError(
                f"{name} is not set: export it, or run the local deployment (replay, no key)",
                venue=self.venue,
                path=path,
            )
        return {self.api_key_header: key}

    def check_payload(self, body: Any, path: str) -> None:
        """Hook for venues that signal errors inside a 2xx body: raise TransientFailure to retry,
        a SourceError to give up. The default accepts every body."""

    def get_json(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:
        headers = self._key_headers(path)
        secrets = list(headers.values())
        secrets += [str(v) for k, v in (params or {}).items() if is_secret_param(k)]
        decoded: list[Any] = []

        def accept(response: httpx.Response) -> None:
            try:
                body = response.json()
            except ValueError:
                content_type = response.headers.get("Content-Type", "no content type")
                raise PayloadError(
                    f"body is not valid JSON ({content_type}): {_body_snippet(response, secrets)}",
                    venue=self.venue,
                    path=path,
                    status=response.status_code,
                ) from None
            self.check_payload(body, path)
            decoded.append(body)

        http = self._client()
        if headers:
            http.headers.update(headers)
        send_with_retries(
            http,
            join_url(self.base_url, path),
            params,
            venue=self.venue,
            path=path,
            policy=self.retry_policy,
            accept=accept,
            secrets=secrets,
        )
        return decoded[-1]

    def get_json_at(
        self, path: str, params: Mapping[str, str | int] | None = None, *, at: datetime
    ) -> TimedAnswer:
        """The venue's answer now (a live API cannot answer for another moment), stamped with
        the moment it arrived; ``at`` is what the caller wanted, which the source checks."""
        body = self.get_json(path, params)
        return TimedAnswer(body=body, taken_at=datetime.now(UTC))


def rejected(venue: str, path: str, status: int, body: str) -> UpstreamError:
    """The error a live client raises for a 4xx: replay clients use it to fail identically."""
    return UpstreamError(
        f"request rejected: {body}", venue=venue, path=path, status=status, attempts=1
    )
