"""A bounded soak: hundreds of mixed tool calls with about 20 % of requests failing, then state == model.

The model holds only what the tools said. A success changes it; an error that says nothing changed leaves it;
an error that says the outcome is unknown is settled the way its hint says, by reading back through the tools.
After every call the DigitalOcean sandbox must equal the model (pools and databases per cluster), so a claim
that was not true shows at the call that made it; TaurusDB proxies are compared once their jobs have run.
Everything is seeded: the operation mix, the arguments, the fault plan and the retry backoff's jitter.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import pytest
from mcp_types import CallToolResult

from poolpilot.server.kernel.errors import ErrorCode, ErrorInfo
from poolpilot.server.kernel.sandbox import Fault, FaultPlan
from poolpilot.tools.digitalocean.sandbox_seed import PG_MAIN_ID, PG_SMALL_ID
from poolpilot.tools.taurusdb.sandbox import INSTANCE_PROD, PROXY_SESSION, PROXY_SWITCHABLE
from tests.reliability.harness import Rig, WiredSandbox, rig
from tests.support import ManualClock

pytestmark = pytest.mark.anyio

SEED = 20260728
CALLS = 400
CLUSTERS = (PG_MAIN_ID, PG_SMALL_ID)
PROXIES = (PROXY_SWITCHABLE, PROXY_SESSION)
USERS = {PG_MAIN_ID: [None, "app", "reporter", "migrator"], PG_SMALL_ID: [None, "doadmin"]}
SEEDED_DBS = {PG_MAIN_ID: ["app", "analytics", "reporting", "defaultdb"], PG_SMALL_ID: ["defaultdb"]}
# Errors that say nothing was changed. The others (upstream_error, timeout, connection_error) leave the outcome
# open unless their message settles it; those are read back.
NOTHING_CHANGED: set[str] = {
    "validation_error",
    "not_found",
    "budget_exceeded",
    "rate_limited",
    "confirmation_invalid",
    "not_supported",
}
KNOWN_CODES = set(get_args(ErrorCode)) - {"internal_error"}

PoolState = tuple[str, int, str, str]  # mode, size, db, user ("" = inbound user), as the sandbox keeps them


def _faults(rng: random.Random) -> FaultPlan:
    plan = FaultPlan(rng=rng)
    for rule in (
        Fault("status", status=429, rate=0.04),
        Fault("status", status=500, rate=0.04),
        Fault("status", status=503, rate=0.03),
        Fault("applied-500", rate=0.05),
        Fault("drop", rate=0.03),
        Fault("timeout", rate=0.01),
        Fault("latency", delay_s=0.2, rate=0.05),
    ):
        plan.add(rule)
    return plan


@dataclass
class Model:
    pools: dict[str, dict[str, PoolState]]
    dbs: dict[str, set[str]]
    proxies: dict[str, str]  # the pool type each proxy has once its accepted jobs have run
    outcomes: Counter[str] = field(default_factory=Counter)


def _snapshot(r: Rig) -> tuple[dict[str, dict[str, PoolState]], dict[str, set[str]]]:
    clusters = r.sandbox.digitalocean.clusters
    pools = {c: {n: (p.mode, p.size, p.db, p.user) for n, p in clusters[c].pools.items()} for c in CLUSTERS}
    for c in CLUSTERS:
        assert len(clusters[c].dbs) == len(set(clusters[c].dbs)), f"duplicated database on {c}: {clusters[c].dbs}"
    return pools, {c: set(clusters[c].dbs) for c in CLUSTERS}


class Soak:
    def __init__(self, r: Rig, rng: random.Random) -> None:
        self.r, self.rng = r, rng
        pools, dbs = _snapshot(r)
        self.model = Model(pools, dbs, {p: r.pool_type(p) for p in PROXIES})
        self.serial = 0
        self.calls = 0
        self.reconciled = 0  # failed creates that reading back showed were not created

    # -- calls ---------------------------------------------------------------------------------------

    async def call(self, tool: str, **args: Any) -> CallToolResult:
        """Every call returns a result (nothing escapes); every error is in the error model."""
        result = await self.r.call(tool, **args)
        self.calls += 1
        assert isinstance(result, CallToolResult)
        if result.is_error:
            info = ErrorInfo.model_validate(result.structured_content)
            assert info.code in KNOWN_CODES, info
            assert result.content[0].text.startswith(f"{info.code}: ")  # type: ignore[union-attr]
            self.model.outcomes[f"error:{info.code}"] += 1
        return result

    async def guarded(self, tool: str, **args: Any) -> CallToolResult | None:
        """The token path; None when the preview itself failed or needed no confirmation (nothing sent)."""
        preview = await self.call(tool, **args)
        data = preview.structured_content or {}
        if preview.is_error or not data.get("confirmation_required"):
            return None if preview.is_error else preview
        return await self.call(tool, **args, confirm_token=data["confirm_token"])

    def settled_no_change(self, result: CallToolResult) -> bool:
        """Whether a failed call says that nothing changed (else the model reads back, as the hint says)."""
        data = result.structured_content or {}
        message = str(data.get("message", ""))
        if data.get("code") in NOTHING_CHANGED:
            return True
        if data.get("code") == "conflict":
            return "now exists" not in message  # a create that failed, yet something by that name is there
        if "nothing was created" in message:
            self.reconciled += 1
            return True
        return "nothing was sent" in message

    async def read_back(self, tool: str, **args: Any) -> dict[str, Any] | None:
        """Read until the tools give a clear answer: the object, or None when it is not there."""
        for _ in range(20):
            result = await self.call(tool, **args)
            data = result.structured_content or {}
            if not result.is_error:
                return data
            if data.get("code") == "not_found":
                return None
        raise AssertionError(f"{tool} never answered clearly")

    # -- operations ----------------------------------------------------------------------------------

    def name(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}-{self.serial}"

    async def create_pool(self) -> None:
        cluster = self.rng.choice(CLUSTERS)
        name, mode = self.name("soak"), self.rng.choice(["session", "transaction", "statement"])
        size, db, user = self.rng.randint(1, 4), self.rng.choice(SEEDED_DBS[cluster]), self.rng.choice(USERS[cluster])
        args = {"cluster_id": cluster, "pool_name": name, "mode": mode, "size": size, "db": db}
        result = await self.call("digitalocean_create_pool", **args, **({"user": user} if user else {}))
        if not result.is_error:
            self.model.pools[cluster][name] = (mode, size, db, user or "")
            self.model.outcomes["created pool"] += 1
            if (result.structured_content or {}).get("note"):
                self.model.outcomes["created though answered with an error"] += 1
        elif not self.settled_no_change(result):
            await self.settle_pool(cluster, name)

    async def update_pool(self) -> None:
        cluster = self.rng.choice(CLUSTERS)
        if not self.model.pools[cluster]:
            return
        name = self.rng.choice(sorted(self.model.pools[cluster]))
        mode, size, db, user = self.model.pools[cluster][name]
        changes: dict[str, Any] = self.rng.choice(
            [{"size": self.rng.randint(1, 5)}, {"mode": self.rng.choice(["session", "transaction"])}]
        )
        args = {"cluster_id": cluster, "pool_name": name, **changes}
        result = await self.guarded("digitalocean_update_pool", **args)
        if result is None:
            return
        data = result.structured_content or {}
        if not result.is_error and data.get("executed"):
            self.model.pools[cluster][name] = (changes.get("mode", mode), changes.get("size", size), db, user)
            self.model.outcomes["updated pool"] += 1
        elif result.is_error and not self.settled_no_change(result):
            await self.settle_pool(cluster, name)

    async def delete_pool(self) -> None:
        cluster = self.rng.choice(CLUSTERS)
        mine = sorted(n for n in self.model.pools[cluster] if n.startswith("soak-"))
        if not mine:
            return
        name = self.rng.choice(mine)
        result = await self.guarded("digitalocean_delete_pool", cluster_id=cluster, pool_name=name)
        if result is None:
            return
        if not result.is_error and (result.structured_content or {}).get("executed"):
            del self.model.pools[cluster][name]
            self.model.outcomes["deleted pool"] += 1
            if "gone" in (result.structured_content or {}).get("message", ""):
                self.model.outcomes["deleted, and the retry found it gone"] += 1
        elif result.is_error and not self.settled_no_change(result):
            await self.settle_pool(cluster, name)

    async def settle_pool(self, cluster: str, name: str) -> None:
        found = await self.read_back("digitalocean_get_pool", cluster_id=cluster, pool_name=name)
        if found is None:
            self.model.pools[cluster].pop(name, None)
        else:
            self.model.pools[cluster][name] = (found["mode"], found["size"], found["db"], found["user"] or "")
        self.model.outcomes["settled by reading back"] += 1

    async def create_database(self) -> None:
        cluster, name = self.rng.choice(CLUSTERS), self.name("sdb")
        result = await self.call("digitalocean_create_database", cluster_id=cluster, database_name=name)
        if not result.is_error:
            self.model.dbs[cluster].add(name)
            self.model.outcomes["created database"] += 1
        elif not self.settled_no_change(result):
            await self.settle_database(cluster, name)

    async def delete_database(self) -> None:
        cluster = self.rng.choice(CLUSTERS)
        mine = sorted(n for n in self.model.dbs[cluster] if n.startswith("sdb-"))
        if not mine:
            return
        name = self.rng.choice(mine)
        result = await self.guarded("digitalocean_delete_database", cluster_id=cluster, database_name=name)
        if result is None:
            return
        if not result.is_error and (result.structured_content or {}).get("executed"):
            self.model.dbs[cluster].discard(name)
            self.model.outcomes["deleted database"] += 1
        elif result.is_error and not self.settled_no_change(result):
            await self.settle_database(cluster, name)

    async def settle_database(self, cluster: str, name: str) -> None:
        found = await self.read_back("digitalocean_get_database", cluster_id=cluster, database_name=name)
        if found is None:
            self.model.dbs[cluster].discard(name)
        else:
            self.model.dbs[cluster].add(name)
        self.model.outcomes["settled by reading back"] += 1

    async def switch(self) -> None:
        proxy, pool_type = self.rng.choice(PROXIES), self.rng.choice(["CLOSED", "SESSION"])
        args = {"instance_id": INSTANCE_PROD, "proxy_id": proxy, "pool_type": pool_type, "wait": False}
        result = await self.guarded("taurusdb_set_proxy_pool_type", **args)
        if result is None:
            return
        data = result.structured_content or {}
        if not result.is_error and data.get("executed"):
            self.model.proxies[proxy] = pool_type
            self.model.outcomes["switched proxy"] += 1
        elif result.is_error and not self.settled_no_change(result) and data.get("code") != "conflict":
            # "A job may or may not have started": as the hint says, let jobs run, then read the proxy.
            self.r.clock.advance(10)
            listed = await self.read_back("taurusdb_list_proxies", instance_id=INSTANCE_PROD)
            assert listed is not None
            self.model.proxies[proxy] = next(row["pool_type"] for row in listed["rows"] if row["proxy_id"] == proxy)
            self.model.outcomes["settled by reading back"] += 1

    async def read(self) -> None:
        cluster = self.rng.choice(CLUSTERS)
        result = await self.call("digitalocean_list_pools", cluster_id=cluster, page_size=100)
        if not result.is_error:  # a read that answers tells the truth
            rows = (result.structured_content or {})["rows"]
            assert {row["name"] for row in rows} == set(self.model.pools[cluster])
        result = await self.call("digitalocean_list_databases", cluster_id=cluster, page_size=100)
        if not result.is_error:
            assert {row["name"] for row in (result.structured_content or {})["rows"]} == self.model.dbs[cluster]
        if self.rng.random() < 0.5:
            await self.call("taurusdb_list_proxies", instance_id=INSTANCE_PROD)
        else:
            await self.call("digitalocean_get_cluster", cluster_id=cluster)

    async def step(self) -> None:
        operation = self.rng.choices(
            [
                self.create_pool,
                self.update_pool,
                self.delete_pool,
                self.create_database,
                self.delete_database,
                self.switch,
                self.read,
            ],
            weights=[5, 4, 3, 2, 2, 3, 4],
        )[0]
        await operation()
        self.r.clock.advance(self.rng.uniform(0, 3))  # TaurusDB jobs move on between calls
        pools, dbs = _snapshot(self.r)
        assert pools == self.model.pools and dbs == self.model.dbs, operation.__name__


async def test_soak_with_injected_faults_ends_in_the_state_the_tools_reported(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    clock = ManualClock()
    sandbox = WiredSandbox(
        clock=clock,
        faults=_faults(random.Random(SEED + 1)),
        timeout_s=30,
        do_rate_limit_per_minute=1_000_000,
        do_rate_limit_per_hour=1_000_000,
    )
    async with rig(tmp_path, sandbox, limit_s=25, jitter=random.Random(SEED + 2).random) as r:
        soak = Soak(r, rng)
        while soak.calls < CALLS:
            await soak.step()
        clock.advance(60)
        assert {p: r.pool_type(p) for p in PROXIES} == soak.model.proxies
    # The same seed gives the same run; these floors hold for every one of 30 other seeds too.
    outcomes = soak.model.outcomes
    assert r.sandbox.faults.fired >= CALLS // 2, outcomes  # the faults were there
    for done in ("created pool", "updated pool", "deleted pool", "created database", "deleted database"):
        assert outcomes[done] >= 5, outcomes  # and work got done through them
    assert outcomes["switched proxy"] >= 5, outcomes
    # Failed answers reconciled into a truthful result: not created, created after all, or deleted after all.
    recovered = soak.reconciled + outcomes["created though answered with an error"]
    assert recovered + outcomes["deleted, and the retry found it gone"] >= 3, outcomes
