"""The tap's config schema: every setting's default, bounds and allowed values, once.

``--about``, ``meltano.yml`` (scripts/about_to_meltano.py) and the README's settings table
are generated from this schema, and :meth:`tap_sfmc_de.settings.Settings.from_config`
reads the values it validated: to change a default or a bound, change it here only.
"""

from __future__ import annotations

from enum import StrEnum

from singer_sdk import typing as th

MAX_PAGE_SIZE = 2500  # the rowset endpoint's own limit
# A run needs the count probe, capability probes and a data page with its boundary probe.
MIN_REQUESTS_PER_RUN = 5
# SFMC publishes no concurrency limit, only that too many concurrent requests are blocked
# (429 errorcode 50200): a few pages at once is the conservative choice.
DEFAULT_PAGE_CONCURRENCY = 4
MAX_PAGE_CONCURRENCY = 8
DEFAULT_TOKEN_STORE = ".secrets/sfmc-refresh-token.json"  # noqa: S105 - a path
ONE_DAY_SECONDS = 86_400


class AuthFlow(StrEnum):
    """How the tap gets its access token (the installed package's type)."""

    CLIENT_CREDENTIALS = "client_credentials"  # Server-to-Server package
    REFRESH_TOKEN = "refresh_token"  # Web App package  # noqa: S105 - a flow name


class FetchMode(StrEnum):
    """What each run reads."""

    INCREMENTAL = "incremental"  # windows on the replication key
    FULL = "full"  # every row on every pass


class FilterSupport(StrEnum):
    """Whether REST ``$filter`` is honoured: probed once per run, or forced."""

    AUTO = "auto"
    SERVER = "server"
    CLIENT = "client"


def _values(choices: type[StrEnum]) -> list[str]:
    return [choice.value for choice in choices]


def _p(name: str, kind: th.JSONTypeHelper, description: str, **kwargs: object) -> th.Property:
    return th.Property(name, kind, description=description, **kwargs)  # type: ignore[arg-type]


CREDENTIAL_SETTINGS = [
    _p("client_id", th.StringType, "API Integration client id.", required=True),
    _p(
        "client_secret", th.StringType, "API Integration client secret.", required=True, secret=True
    ),
    _p(
        "subdomain",
        th.StringType,
        "Tenant subdomain: 28 characters, starts with 'mc', lowercase letters, digits, hyphens.",
        required=True,
    ),
    _p("account_id", th.StringType, "MID of the business unit; default is the package's own BU."),
    _p(
        "auth_flow",
        th.StringType,
        "client_credentials (Server-to-Server package) or refresh_token (Web App package).",
        default=AuthFlow.CLIENT_CREDENTIALS.value,
        allowed_values=_values(AuthFlow),
    ),
    _p(
        "refresh_token",
        th.StringType,
        "Initial refresh token (refresh_token flow); rotated tokens live in token_store_path.",
        secret=True,
    ),
    _p(
        "token_store_path",
        th.StringType,
        "File (mode 0600, fcntl-locked) that keeps the newest refresh token.",
        default=DEFAULT_TOKEN_STORE,
    ),
    _p("redirect_uri", th.StringType, "Web App redirect URI; used only by tap-sfmc-de-auth."),
    _p(
        "scopes",
        th.StringType,
        "Space-separated scopes to request (default: all). Must include data_extensions_read.",
    ),
]

SYNC_SETTINGS = [
    _p(
        "data_extension_keys",
        th.ArrayType(th.StringType),
        "DE external keys (CustomerKey, not the name); one stream per key, named de_<key>.",
        required=True,
    ),
    _p(
        "replication_key",
        th.StringType,
        "Date field that every writer sets on every insert and update.",
        default="ModifiedDate",
    ),
    _p(
        "replication_keys_by_de",
        th.ObjectType(additional_properties=th.StringType),
        'Per-DE-key override of replication_key, e.g. {"Orders": "UpdatedAt"}.',
    ),
    _p(
        "fetch_mode",
        th.StringType,
        "incremental (windows on replication_key) or full (every row on every pass).",
        default=FetchMode.INCREMENTAL.value,
        allowed_values=_values(FetchMode),
    ),
    _p(
        "filter_support",
        th.StringType,
        "Is REST $filter honoured? auto probes once per run; server/client force it.",
        default=FilterSupport.AUTO.value,
        allowed_values=_values(FilterSupport),
    ),
    _p("start_date", th.DateTimeType, "Lower bound of the first window (no bookmark yet)."),
    _p(
        "page_size",
        th.IntegerType(minimum=1, maximum=MAX_PAGE_SIZE),
        f"Rows per rowset page (1-{MAX_PAGE_SIZE}).",
        default=MAX_PAGE_SIZE,
    ),
    _p(
        "max_pages_per_run",
        th.IntegerType(minimum=MIN_REQUESTS_PER_RUN, maximum=1_000_000),
        "Rowset requests per stream per run, of every kind (pages and probes; "
        f"at least {MIN_REQUESTS_PER_RUN}).",
        default=50,
    ),
    _p(
        "page_concurrency",
        th.IntegerType(minimum=1, maximum=MAX_PAGE_CONCURRENCY),
        "Rowset pages of a past window read at once with $filter honoured (1: one at a time; "
        f"at most {MAX_PAGE_CONCURRENCY}). Every request counts against max_pages_per_run; a "
        "429 errorcode 50200 halves it for the rest of the run.",
        default=DEFAULT_PAGE_CONCURRENCY,
    ),
    _p(
        "sfmc_timezone_offset",
        th.StringType,
        "Fixed UTC offset of SFMC date values (no DST).",
        default="-06:00",
    ),
    _p(
        "clock_margin_seconds",
        th.IntegerType(minimum=0, maximum=ONE_DAY_SECONDS),
        "Seconds subtracted from the server clock for a window's upper bound.",
        default=1,
    ),
    _p(
        "lookback_seconds",
        th.IntegerType(minimum=0, maximum=ONE_DAY_SECONDS),
        "Each run re-reads rows this far behind the bookmark, for writers that commit late "
        f"(0-{ONE_DAY_SECONDS}); rows already emitted are not emitted again.",
        default=300,
    ),
    _p(
        "auth_base_url",
        th.StringType,
        "Override of https://<subdomain>.auth.marketingcloudapis.com/ (http only on loopback).",
    ),
]

# The fields of tap_sfmc_de.retries.RetryPolicy, one per setting of the same name.
RETRY_SETTINGS = [
    _p(
        "request_timeout",
        th.NumberType(minimum=0.001),
        "Seconds per HTTP request.",
        default=300,
    ),
    _p(
        "max_retries",
        th.IntegerType(minimum=0, maximum=100),
        "Retries of a transient failure (429, 5xx, timeouts, dropped connections).",
        default=5,
    ),
    _p(
        "backoff_base_seconds",
        th.NumberType(minimum=0),
        "First backoff delay; doubles per retry, with jitter.",
        default=2,
    ),
    _p(
        "backoff_max_seconds",
        th.NumberType(minimum=0),
        "Cap of one backoff delay (errorcode 50200 waits 4x longer).",
        default=60,
    ),
    _p(
        "max_retry_after_seconds",
        th.NumberType(minimum=0, maximum=3600),
        "Cap of one wait the server asks for (429 Retry-After or retryAfter).",
        default=300,
    ),
    _p(
        "retry_budget_seconds",
        th.NumberType(minimum=0, maximum=ONE_DAY_SECONDS),
        "Total seconds one request may wait between retries before it fails.",
        default=900,
    ),
]

# Read by tap_sfmc_de.full_pass_version (a setting of the same name).
FULL_PASS_SETTINGS = [
    _p(
        "emit_activate_version_messages",
        th.BooleanType,
        "fetch_mode full: give each full pass a table version and send ACTIVATE_VERSION when "
        "the pass has read every row (a pass may span runs), so a target that honours it drops "
        "the rows deleted in SFMC. Incremental mode never sends it.",
        default=False,
    ),
]

CONFIG_SCHEMA = th.PropertiesList(
    *CREDENTIAL_SETTINGS, *SYNC_SETTINGS, *RETRY_SETTINGS, *FULL_PASS_SETTINGS
).to_dict()
