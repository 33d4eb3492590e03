"""Smoke tests of the HA stack: a real Patroni cluster behind Toxiproxy, and the service.

Expected behaviour: one leader and one synchronous standby streaming from it; the
service reaches the primary through a multi-host URL over the client proxies; an
acknowledged claim is on the standby too; each node's Patroni reaches etcd only through
its own proxy.
"""

from __future__ import annotations

import time

import httpx
import pytest

from chaos.infra.ha_stack import NODES, HaStack
from chaos.infra.postgres import PostgresAdmin
from chaos.infra.toxiproxy import ToxiproxyClient
from chaos.infra.waiting import wait_for

pytestmark = pytest.mark.ha

#: How long a committed claim may take to be replayed on a standby.
REPLAY_TIMEOUT = 10.0


def test_one_leader_and_a_synchronous_standby(chaos_ha: HaStack) -> None:
    members = chaos_ha.members()
    assert sorted(m.name for m in members) == [f"node{i}" for i in range(1, NODES + 1)]
    assert [m.role for m in members if m.is_leader] == ["leader"]
    # One synchronous standby (synchronous_node_count 1), the others asynchronous.
    streaming = sorted(m.role for m in members if m.is_streaming)
    assert streaming == ["replica"] * (NODES - 2) + ["sync_standby"]
    leader = chaos_ha.leader()
    assert leader is not None
    assert chaos_ha.primary_setting("synchronous_standby_names") != ""


def test_the_service_reaches_the_primary_through_the_proxies(
    chaos_ha: HaStack, chaos_ha_toxiproxy: ToxiproxyClient
) -> None:
    url = chaos_ha.endpoints.proxied_database_url
    assert "target_session_attrs=read-write" in url
    proxies = chaos_ha_toxiproxy.proxies()
    for node in chaos_ha.nodes:
        assert f"127.0.0.1:{node.client_port}" in url
        for name in (node.client_proxy, node.replication_proxy, node.etcd_proxy):
            assert proxies[name].enabled

    coupon = f"HA-SMOKE-{time.monotonic_ns()}"
    with httpx.Client(base_url=chaos_ha.endpoints.service_url, timeout=10.0) as client:
        assert client.post("/api/coupons", json={"name": coupon, "amount": 5}).status_code == 201
        claim = {"user_id": "smoke-1", "coupon_name": coupon}
        assert client.post("/api/coupons/claim", json=claim).status_code == 200

    standby = chaos_ha.node(chaos_ha.standbys()[0])
    with PostgresAdmin(standby.direct_url) as admin:
        assert admin.scalar("SELECT pg_is_in_recovery()") is True

        def replayed() -> bool:
            return (
                admin.scalar(
                    "SELECT count(*) FROM claims WHERE coupon_name = %s AND user_id = 'smoke-1'",
                    (coupon,),
                )
                == 1
            )

        wait_for(replayed, timeout=REPLAY_TIMEOUT, what="the claim on the standby")


def test_patroni_reaches_etcd_only_through_its_proxy(chaos_ha: HaStack) -> None:
    for node in chaos_ha.nodes:
        config = (node.home / "patroni.yml").read_text()
        assert f"127.0.0.1:{node.etcd_port}" in config
        assert chaos_ha.etcd_url.rsplit(":", 1)[1] not in config
