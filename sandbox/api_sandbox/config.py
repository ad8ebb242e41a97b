"""Runtime switches. Each one exists because the sources disagree or are silent.

Everything here can be set from ``--config FILE.json``, CLI flags, or
``POST /_sandbox/config`` on either server.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any

from api_sandbox.filters import DateLiteral, Grammar

DEFAULT_SCOPES = [
    "data_extensions_read",
    "data_extensions_write",
    "offline",
    "list_and_subscribers_read",
]


class QueryMode(StrEnum):
    """How the rowset treats ``$filter``, ``$orderBy`` (``filter_mode``, ``orderby_mode``)."""

    HONOURED = "honoured"
    IGNORED = "ignored"  # mcecli: "rowset cannot filter" -- silently return everything
    REJECTED = "rejected"  # 400 errorcode 10001 whenever the parameter is sent


class DefaultOrder(StrEnum):
    """Row order when no ``$orderBy`` applies (switch ``default_order``)."""

    INSERTION = "insertion"  # sqlite rowid: updates keep their place, inserts append
    RANDOM_STABLE = "random-stable"  # one fixed shuffle per DE
    RESHUFFLED = "reshuffled"  # a new shuffle on every request


class AppendFlagPlacement(StrEnum):
    """Where Insider honours ``append``/``not_append`` (``insider_append_flag_placement``)."""

    BOTH = "both"
    USER = "user"  # per user only; a top-level flag is ignored
    TOP = "top"  # top level only; a per-user flag is ignored


def _values(enum: type[StrEnum]) -> tuple[str, ...]:
    """The wire/config spellings, for choices and messages."""
    return tuple(member.value for member in enum)


QUERY_MODES = _values(QueryMode)
FILTER_GRAMMARS = _values(Grammar)
FILTER_DATE_LITERALS = _values(DateLiteral)
DEFAULT_ORDERS = _values(DefaultOrder)
APPEND_FLAG_PLACEMENTS = _values(AppendFlagPlacement)


class ConfigError(ValueError):
    """Unknown switch or invalid value."""


@dataclass
class SandboxConfig:
    """All switches with their defaults (the most commonly observed behaviour)."""

    # --- SFMC auth -----------------------------------------------------------------
    client_id: str = "sandbox-client-id"
    client_secret: str = "sandbox-client-secret"  # noqa: S105 - published demo credential
    account_id: str = "100001"
    granted_scopes: list[str] = field(default_factory=lambda: list(DEFAULT_SCOPES))
    token_lifetime_seconds: int = 1079  # what live responses show (sfmc-api.md §1.4)
    refresh_token_lifetime_seconds: int = 30 * 86400
    auth_code: str = "sandbox-auth-code"
    redirect_uri: str = "http://127.0.0.1/callback"
    # Real acceptance of form-encoded token bodies is unconfirmed; default rejects them.
    accept_form_token_body: bool = False
    token_rate_limit_per_minute: int | None = None
    # --- REST rowset ---------------------------------------------------------------
    # "honoured" | "ignored" (mcecli: rowset cannot filter) | "rejected" (400 errorcode 10001)
    filter_mode: str = QueryMode.HONOURED
    orderby_mode: str = QueryMode.HONOURED  # same three readings: semantics unverified
    # and/or/not/parentheses (FuelSDK-Java's grammar) or the "and"-only subset (§2.5)
    filter_grammar: str = Grammar.FULL
    # How a naive $filter date literal is read; the real format and zone are unknown (§2.5)
    filter_date_literal: str = DateLiteral.UTC_MINUS_6
    # Row order when no $orderBy applies; no source documents it (§2.3, §8 q4)
    default_order: str = DefaultOrder.INSERTION
    # Writers (SQL activities, imports) stamp ModifiedDate when they start and commit later:
    # changed rows carry a ModifiedDate this many seconds before they became visible.
    commit_lag_seconds: int = 0
    request_token_snapshot: bool = False  # False = every page re-runs the query (harsh)
    request_token_lifetime_seconds: int = 1200  # real lifetime unknown
    max_page_size: int = 2500  # above it: capped (real behaviour unknown)
    default_page_size: int = 2500  # responses show 2500 when none was sent
    accept_unprefixed_params: bool = True  # rowset also reads page/pageSize without "$"
    # SFMC answers 429 errorcode 50200 "requests temporarily blocked" to too many concurrent
    # requests (§5) without saying how many: above this many REST rowset requests in
    # flight, the next one gets that answer (None: no limit).
    rowset_concurrency_limit: int | None = None
    # --- SOAP ------------------------------------------------------------------------
    soap_max_batch_size: int = 2500
    # --- Insider ---------------------------------------------------------------------
    insider_partner: str = "sandboxpartner"
    insider_api_key: str = "sandbox-api-key"
    # 403 per the upsert doc; the error page also lists 401 "Partner token authentication
    # failed." and 400 "Partner is invalid." (a 400 a client could mistake for a bad body).
    insider_auth_failure_status: int = 403
    insider_max_users: int = 1000
    insider_max_users_status: int = 400  # undocumented; 400 is a guess
    insider_max_body_bytes: int = 5_000_000
    insider_oversize_status: int = 400  # AE-ERR says 400; 413 is worth testing too
    # Where `not_append`/`append` is honoured: the sources show both placements (PM sample
    # per user, SEG-audiences/AC-PATCH top level); "user" or "top" ignores the other one.
    insider_append_flag_placement: str = AppendFlagPlacement.BOTH
    # Custom attributes defined on the account (metadata/columns lists them as c_<name>,
    # with those stored profiles hold); the demo mapping's (meltano.yml) by default.
    insider_custom_attributes: list[str] = field(
        default_factory=lambda: [
            "data_source",
            "loyalty_points",
            "lifetime_value",
            "sfmc_subscriber_key",
            "sfmc_modified_date",
        ]
    )
    # --- both --------------------------------------------------------------------------
    latency: dict[str, float] = field(default_factory=dict)  # endpoint -> seconds

    _CHOICES = {  # noqa: RUF012 - class-level constant, not a field
        "filter_mode": QUERY_MODES,
        "orderby_mode": QUERY_MODES,
        "filter_grammar": FILTER_GRAMMARS,
        "filter_date_literal": FILTER_DATE_LITERALS,
        "default_order": DEFAULT_ORDERS,
        "insider_auth_failure_status": (400, 401, 403),
        "insider_oversize_status": (400, 413),
        "insider_append_flag_placement": APPEND_FLAG_PLACEMENTS,
    }

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a partial update, validating names, types and choices.

        Raises:
            ConfigError: for unknown keys or bad values.
        """
        known = {f.name: f for f in fields(self)}
        candidate = copy.deepcopy(self)
        for name, value in changes.items():
            if name not in known:
                raise ConfigError(f"unknown switch {name!r}")
            current = getattr(self, name)
            if current is not None and value is not None:
                # A StrEnum default takes its plain spelling from JSON.
                expected = str if isinstance(current, StrEnum) else type(current)
                if expected is int and isinstance(value, float) and value.is_integer():
                    value = int(value)  # noqa: PLW2901 - normalising JSON numbers
                if not isinstance(value, expected) or (
                    isinstance(value, bool) and expected is not bool
                ):
                    raise ConfigError(f"{name} must be {expected.__name__}, got {value!r}")
            if name == "rowset_concurrency_limit" and value is not None and value < 1:
                raise ConfigError(f"{name} must be at least 1 or null, got {value!r}")
            choices = self._CHOICES.get(name)
            if choices and value not in choices:
                raise ConfigError(f"{name} must be one of {choices}")
            setattr(candidate, name, copy.deepcopy(value))
        for f in fields(self):
            setattr(self, f.name, getattr(candidate, f.name))

    def to_json(self) -> dict[str, Any]:
        """Plain dict of all switches."""
        return asdict(self)
