"""The TaurusDB sandbox's object model and seed data (ids and behaviour are tabled in `sandbox.py`).

Bodies follow the field names and types of openapi.yaml (huaweicloudsdkgaussdb 3.1.219 models); values that the
sandbox does not vary are copied from the API reference examples.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

__all__ = [
    "INSTANCE_ANALYTICS",
    "INSTANCE_PROD",
    "LATEST_PROXY_VERSION",
    "POOL_JOB",
    "POOL_TYPES",
    "PROXY_FLAG_FALSE",
    "PROXY_OLD_KERNEL",
    "PROXY_SESSION",
    "PROXY_SWITCHABLE",
    "SANDBOX_AK",
    "SANDBOX_PROJECT_ID",
    "SANDBOX_SK",
    "SESSION_MIN_VERSION",
    "SandboxInstance",
    "SandboxJob",
    "SandboxProxy",
    "iso_time",
    "parameter_rows",
    "seed_instances",
    "seed_parameters",
    "seed_proxies",
    "version_key",
]

# The fake example credentials of signing-vectors.json (DECISIONS.md: the sandbox accepts exactly these).
SANDBOX_AK = "HPUAEXAMPLEAK0000001"
SANDBOX_SK = "exampleSecretKey0123456789abcdefghijklmn"
SANDBOX_PROJECT_ID = "054e292c9880d4992f02c0196d3ea468"
INSTANCE_PROD = "af315b8e6aaa41799bd9a31f2de15abcin07"
INSTANCE_ANALYTICS = "7d2c4f1a9b3e4c5d8e6f0a1b2c3d4e5fin07"
PROXY_SWITCHABLE = "5881e1ca66af4aefbc64dc2874e55b3fpo01"
PROXY_SESSION = "3b9d2e7f0c1a4b5d9e8f7a6b5c4d3e2fpo01"
PROXY_OLD_KERNEL = "9c1e4a7b2d3f4e5a8b6c0d1e2f3a4b5cpo01"
PROXY_FLAG_FALSE = "4f6a8c0e2b4d4f6a8c0e2b4d6f8a0c2epo01"
POOL_TYPES = ("CLOSED", "SESSION")
POOL_JOB = "ModifyProxyConnectionPoolType"
# The proxy kernel SESSION pooling needs (UpdateProxyConnectionPoolType reference); older ones answer DBS.05000001.
SESSION_MIN_VERSION = "2.22.07.000"
LATEST_PROXY_VERSION = "2.25.06.000"  # what ShowProxyVersion offers as latest_version (illustrative)
# (name, data_type, value_range, value, description). multiStatementType and looseImciApThreshold with elem_type
# "system" are terraform-provider-huaweicloud's acceptance values; the other names are unverified.
_PARAMETERS = (
    ("multiStatementType", "string", "Strict,Loose,Parse", "Strict", "How multi-statements are routed."),
    ("looseImciApThreshold", "integer", "1-100000000", "5000", "Cost above which loose IMCI reads go to HTAP nodes."),
    ("connection_idle_timeout", "integer", "1-86400", "28800", "Seconds an idle client connection is kept."),
    ("max_connections", "integer", "1-50000", "20000", "Client connections the proxy accepts."),
    ("read_only_route_on_failure", "string", "ON,OFF", "OFF", "Route reads to the primary when replicas fail."),
)


def version_key(version: str) -> tuple[int, ...] | None:
    """A dotted version as numbers for comparing ("2.22.07.000" < "2.25.06.000"); None when it is not one."""
    parts = version.split(".")
    return tuple(int(p) for p in parts) if all(p.isascii() and p.isdigit() for p in parts) else None


def seed_parameters() -> dict[str, str]:
    return {name: value for name, _, _, value, _ in _PARAMETERS}


def parameter_rows(values: dict[str, str]) -> list[dict[str, str]]:
    """ProxyConfiguration bodies (huaweicloudsdkgaussdb 3.1.219) with a proxy's current values."""
    return [
        {"name": n, "data_type": t, "elem_type": "system", "value_range": r, "value": values.get(n, v)}
        | {"description": d}
        for n, t, r, v, d in _PARAMETERS
    ]


def iso_time(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(ts))


@dataclass
class SandboxInstance:
    id: str
    name: str
    region: str
    private_ip: str
    readonly_ip: str
    proxy_ips: list[str]
    master_node_id: str
    readonly_node_id: str

    def body(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "status": "ACTIVE",
            "private_ips": [self.private_ip],
            "proxy_ips": self.proxy_ips,
            "readonly_private_ips": [self.readonly_ip],
            "public_ips": [],
            "port": "3306",
            "type": "Cluster",
            "region": self.region,
            "datastore": {"type": "gaussdb-mysql", "version": "8.0.30", "kernel_version": "2.0.57.240900"},
            "created": "2025-03-11T08:01:44+0800",
            "updated": "2025-09-04T16:01:02+0800",
            "db_user_name": "root",
            "vpc_id": "3305eb40-2707-4940-921c-9f335f84a2ca",
            "subnet_id": "0f2e9c34-7b1a-4c5d-9e8f-1a2b3c4d5e6f",
            "security_group_id": "0d2f9a2c-3c5b-4f1e-8a6d-1e2f3a4b5c6d",
            "flavor_ref": "gaussdb.mysql.xlarge.x86.4",
            "flavor_info": {"vcpus": "4", "ram": "16"},
            "volume": {"type": "POOLED", "size": "40"},
            "backup_strategy": {"start_time": "02:00-03:00", "keep_days": "7"},
            "enterprise_project_id": "0",
            "time_zone": "UTC+08:00",
            "charge_info": {"charge_mode": "postPaid"},
            "tags": [],
        }

    def node(self, node_id: str, suffix: str, weight: int, az: str) -> dict[str, object]:
        return {
            "id": node_id,
            "instance_id": self.id,
            "status": "ACTIVE",
            "name": f"{self.name}_{suffix}",
            "weight": weight,
            "availability_zone": [{"code": f"{self.region}{az}", "description": f"AZ-{az}"}],
        }


@dataclass
class SandboxProxy:
    pool_id: str
    instance_id: str
    name: str
    type: str  # readwrite | readonly
    address: str
    connection_pool_type: str
    switch_connection_pool_type_enabled: bool
    version: str  # the proxy kernel; below SESSION_MIN_VERSION the pool-type PUT answers DBS.05000001
    node_ids: tuple[str, ...]
    updated_at: str = "2025-09-04T08:01:02+0000"
    consistence_mode: str = "session"
    parameters: dict[str, str] = field(default_factory=seed_parameters)

    @property
    def kernel_too_early(self) -> bool:
        """The flag may say it can switch, yet the kernel is too old for SESSION (lifted by an upgrade)."""
        return (version_key(self.version) or ()) < (version_key(SESSION_MIN_VERSION) or ())

    def body(self, instance: SandboxInstance) -> dict[str, object]:
        nodes = [
            {
                "id": node_id,
                "status": "ACTIVE",
                "name": f"proxy-node-{n}",
                "role": "master" if n == 1 else "slave",
                "az_code": f"{instance.region}{'ab'[(n - 1) % 2]}",
                "frozen_flag": 0,
            }
            for n, node_id in enumerate(self.node_ids, start=1)
        ]
        proxy = {
            "pool_id": self.pool_id,
            "status": "ACTIVE",
            "address": self.address,
            "port": 3306,
            "pool_status": "ACTIVE",
            "delay_threshold_in_seconds": 30,
            "elb_vip": "",
            "eip": "",
            "vcpus": "2",
            "ram": "4",
            "node_num": len(nodes),
            "type": self.type,
            "created_at": "2025-03-11T08:21:05+0000",
            "updated_at": self.updated_at,
            "support_ap_node": False,
            "mode": "Cluster",
            "nodes": nodes,
            "flavor_ref": "gaussdb.proxy.large.x86.2",
            "name": self.name,
            "transaction_split": "OFF",
            "connection_pool_type": self.connection_pool_type,
            "switch_connection_pool_type_enabled": self.switch_connection_pool_type_enabled,
            "route_mode": 0,
            "balance_route_mode_enabled": True,
            "consistence_mode": self.consistence_mode,
            "subnet_id": "0f2e9c34-7b1a-4c5d-9e8f-1a2b3c4d5e6f",
            "ssl_option": "false",
            "new_node_auto_add_status": "OFF",
            "new_node_weight": 0,
        }
        return {
            "proxy": proxy,
            "master_node": instance.node(instance.master_node_id, "node01", 0, "a"),
            "readonly_nodes": [instance.node(instance.readonly_node_id, "node02", 100, "b")],
            "htap_nodes": [],
        }


@dataclass
class SandboxJob:
    id: str
    instance_id: str
    proxy_id: str
    connection_pool_type: str
    created_at: float  # sandbox (skewed) time, like everything else it reports
    running_at: float
    completed_at: float
    visible_at: float
    applied: bool = False
    name: str = POOL_JOB
    settings: dict[str, str] = field(default_factory=dict)  # what a proxy-admin job applies (sandbox_admin.py)

    def status(self, now: float) -> str:
        if now >= self.completed_at:
            return "Completed"
        return "Running" if now >= self.running_at else "Pending"

    def body(self, now: float, instance_name: str) -> dict[str, object]:
        status = self.status(now)
        span = max(self.completed_at - self.running_at, 1e-9)
        return {
            "id": self.id,
            "name": self.name,
            "status": status,
            "created": iso_time(self.created_at),
            "ended": iso_time(self.completed_at) if status == "Completed" else "",
            "process": f"{min(99, int(100 * (now - self.running_at) / span))}%" if status == "Running" else "",
            "instance": {"id": self.instance_id, "name": instance_name},
            "entities": {},
            "fail_reason": "",
        }


def seed_instances() -> list[SandboxInstance]:
    prod = SandboxInstance(
        id=INSTANCE_PROD,
        name="taurus-prod",
        region="cn-north-4",
        private_ip="192.168.0.10",
        readonly_ip="192.168.0.11",
        proxy_ips=["192.168.0.62", "192.168.0.63"],
        master_node_id="1b3d5f7a9c0e4a2b8d6f0a1c3e5a7b9dno07",
        readonly_node_id="4d6f8b0c2e3a5b7d9f1b3c5d7e9f1a2bno07",
    )
    analytics = SandboxInstance(
        id=INSTANCE_ANALYTICS,
        name="taurus-analytics",
        region="cn-north-4",
        private_ip="192.168.1.10",
        readonly_ip="192.168.1.11",
        proxy_ips=["192.168.1.62", "192.168.1.63"],
        master_node_id="6a8c0e2f4b6d8f0a2c4e6a8b0d2f4a6cno07",
        readonly_node_id="8e0a2c4f6b8d0f2a4c6e8a0b2d4f6a8eno07",
    )
    return [prod, analytics]


def seed_proxies() -> list[SandboxProxy]:
    switchable = SandboxProxy(
        pool_id=PROXY_SWITCHABLE,
        instance_id=INSTANCE_PROD,
        name="proxy-prod-rw",
        type="readwrite",
        address="192.168.0.62",
        connection_pool_type="CLOSED",
        switch_connection_pool_type_enabled=True,
        version=LATEST_PROXY_VERSION,
        node_ids=("8f1a6b0c2d7e4e2f9a0b1c2d3e4f5a6bpn01", "9e2b7c1d3e8f4f3a8b1c2d3e4f5a6b7cpn01"),
    )
    session = SandboxProxy(
        pool_id=PROXY_SESSION,
        instance_id=INSTANCE_PROD,
        name="proxy-prod-ro",
        type="readonly",
        address="192.168.0.63",
        connection_pool_type="SESSION",
        switch_connection_pool_type_enabled=True,
        version="2.24.12.000",
        node_ids=("2c4e6a8b0d2f4a6c8e0a2b4d6f8a0c2epn01", "3d5f7b9c1e3a5c7e9a1b3d5f7a9c1e3apn01"),
    )
    old_kernel = SandboxProxy(
        pool_id=PROXY_OLD_KERNEL,
        instance_id=INSTANCE_ANALYTICS,
        name="proxy-analytics-legacy",
        type="readwrite",
        address="192.168.1.62",
        connection_pool_type="CLOSED",
        switch_connection_pool_type_enabled=True,
        version="2.22.05.000",
        node_ids=("5e7a9c1b3d5f4a7c9e1b3d5f7a9c2e4apn01",),
    )
    flag_false = SandboxProxy(
        pool_id=PROXY_FLAG_FALSE,
        instance_id=INSTANCE_ANALYTICS,
        name="proxy-analytics-old",
        type="readonly",
        address="192.168.1.63",
        connection_pool_type="CLOSED",
        switch_connection_pool_type_enabled=False,
        version="2.7.4.0",
        node_ids=("6f8b0d2c4e6a5b8d0f2c4e6a8b0d3f5bpn01",),
    )
    return [switchable, session, old_kernel, flag_false]
