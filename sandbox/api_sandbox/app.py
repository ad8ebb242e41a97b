"""The sandbox's shared state: one object both HTTP servers talk to."""

from __future__ import annotations

import copy
import threading
from collections import Counter
from typing import Any

from api_sandbox.config import SandboxConfig
from api_sandbox.faults import Faults
from api_sandbox.insider import Insider
from api_sandbox.routes import FAULT_ENDPOINTS
from api_sandbox.scenarios import Scenarios
from api_sandbox.sfmc_auth import Auth
from api_sandbox.sfmc_rowset import Rowset
from api_sandbox.sfmc_soap import Soap
from api_sandbox.store import Store

ROW_READS = ("rest_key", "rest_token", "soap")


class Sandbox:
    """Config, data and counters; ``reset`` restores the startup state."""

    def __init__(
        self,
        config: SandboxConfig,
        de_specs: list[dict[str, Any]],
        faults: list[dict[str, Any]] | None = None,
        scenarios: list[dict[str, Any]] | None = None,
    ) -> None:
        self.config = config
        # Bumped by every reset: a request still sleeping in injected latency or a delay
        # fault when a reset happens belongs to the previous test and must not apply.
        self.generation = 0
        self._startup_config = copy.deepcopy(config.to_json())
        self._startup_specs = copy.deepcopy(de_specs)
        self._startup_faults = copy.deepcopy(faults or [])
        self._startup_scenarios = copy.deepcopy(scenarios or [])
        self.store = Store()
        self.auth = Auth(config)
        self.faults = Faults(FAULT_ENDPOINTS)
        self.rowset = Rowset(config, self.store)
        self.soap = Soap(config, self.store, self.faults, on_fault=self.fault_fired)
        self.insider = Insider(config)
        self.scenarios = Scenarios()
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.pages_served: Counter[str] = Counter()
        self.rows_served: Counter[str] = Counter()
        self.faults_fired: Counter[str] = Counter()
        # rest_key / rest_token / soap (row reads) and soap_fields (schema reads)
        self.rowset_requests: Counter[str] = Counter()
        # REST rowset requests being served now, the most seen at once (since the last
        # counter reset), and how many the concurrency limit answered 50200.
        self.rowset_in_flight = 0
        self.rowset_in_flight_max = 0
        self.rowset_concurrency_blocked = 0
        self._load_startup()

    def _load_startup(self) -> None:
        for spec in self._startup_specs:
            self.store.create_from_spec(spec)
        self.faults.add(copy.deepcopy(self._startup_faults))
        for sc in self._startup_scenarios:
            self.scenarios.add(sc)

    def reset(self) -> None:
        """Back to the startup state: config, DEs, tokens, faults, logs, counters."""
        with self._lock:
            self.generation += 1
            self.config.update(copy.deepcopy(self._startup_config))
            self.rowset.reset()
            self.soap.reset()
            self.store.clear()
            self.auth.reset()
            self.insider.reset()
            self.faults.clear()
            self.scenarios.clear()
            self._clear_counters()
            self._load_startup()

    def _clear_counters(self) -> None:
        for counter in (
            self.requests,
            self.statuses,
            self.pages_served,
            self.rows_served,
            self.faults_fired,
            self.rowset_requests,
        ):
            counter.clear()
        self.rowset_in_flight_max = self.rowset_in_flight
        self.rowset_concurrency_blocked = 0

    def reset_counters(self) -> None:
        """Zero the request counters only (data, config, faults and tokens stay)."""
        with self._lock:
            self._clear_counters()

    def rowset_request(self, kind: str) -> None:
        """Count a read as it arrives (row reads are the tap's request budget)."""
        with self._lock:
            self.rowset_requests[kind] += 1

    def rowset_admit(self) -> bool:
        """Take a REST rowset request in, or refuse it above ``rowset_concurrency_limit``.

        Returns:
            True when admitted (the caller must call :meth:`rowset_leave` before replying),
            False when the request must be answered 429 errorcode 50200.
        """
        limit = self.config.rowset_concurrency_limit
        with self._lock:
            if limit is not None and self.rowset_in_flight >= limit:
                self.rowset_concurrency_blocked += 1
                return False
            self.rowset_in_flight += 1
            self.rowset_in_flight_max = max(self.rowset_in_flight_max, self.rowset_in_flight)
            return True

    def rowset_leave(self) -> None:
        """An admitted rowset request is answered (called before its reply is sent)."""
        with self._lock:
            self.rowset_in_flight -= 1

    def count(self, endpoint: str, status: int) -> None:
        """Per-endpoint request and status counters."""
        with self._lock:
            self.requests[endpoint] += 1
            self.statuses[f"{endpoint}:{status}"] += 1

    def fault_fired(self, endpoint: str) -> None:
        """Count a fired fault rule."""
        with self._lock:
            self.faults_fired[endpoint] += 1

    def soap_rows_served(self, de_key: str, rows: int) -> None:
        """Count rows returned through SOAP retrieves."""
        with self._lock:
            self.rows_served[f"soap:{de_key}"] += rows

    def page_served(self, de_key: str, page: int, rows: int) -> list[dict[str, Any]]:
        """Count a served page and fire due scenarios; returns the changes made."""
        with self._lock:
            self.pages_served[de_key] += 1
            self.rows_served[de_key] += rows
        changes = []
        for sc in self.scenarios.due(de_key, page):
            de = self.store.get(sc.de_key)
            if de is not None:
                changes.append(
                    self.store.mutate(
                        de,
                        sc.update,
                        sc.insert,
                        sc.delete,
                        trigger=f"scenario:after_page={page}",
                        lag_seconds=(
                            self.config.commit_lag_seconds
                            if sc.lag_seconds is None
                            else sc.lag_seconds
                        ),
                    )
                )
        return changes

    def state(self) -> dict[str, Any]:
        """Everything tests may want to assert on, as JSON."""
        with self._lock:
            counters = {
                "requests": dict(self.requests),
                "statuses": dict(self.statuses),
                "pages_served": dict(self.pages_served),
                "rows_served": dict(self.rows_served),
                "faults_fired": dict(self.faults_fired),
                "rowset_requests": {
                    "rest_key": self.rowset_requests["rest_key"],
                    "rest_token": self.rowset_requests["rest_token"],
                    "soap": self.rowset_requests["soap"],
                    "total": sum(self.rowset_requests[k] for k in ROW_READS),
                },
                "soap_field_retrieves": self.rowset_requests["soap_fields"],
                "rowset_in_flight_max": self.rowset_in_flight_max,
                "rowset_concurrency_blocked": self.rowset_concurrency_blocked,
                "tokens_minted": self.auth.minted,
                "refresh_tokens_used": len(self.auth.used_refresh),
                "upsert_requests": sum(
                    1 for r in self.insider.requests if r["endpoint"] == "upsert"
                ),
                "users_accepted": self.insider.users_accepted,
                "users_rejected": self.insider.users_rejected,
                "profiles": len(self.insider.profiles),
            }
        return {
            "config": self.config.to_json(),
            "counters": counters,
            "faults": self.faults.to_json(),
            "scenarios": self.scenarios.to_json(),
            "des": [
                {**de.describe(), "rows": self.store.count(de, None), "changes": len(de.changes)}
                for de in list(self.store.des.values())
            ],
        }
