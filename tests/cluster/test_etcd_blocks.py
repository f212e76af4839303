"""Address blocks (controller.kvblocks) against a real 3-member etcd: three hosts, each its
own etcd client and lease, claiming at once; 30 runs of 30 concurrent claims, 0 duplicate
addresses, every address inside a block of its own host, no block held twice."""

from __future__ import annotations

import asyncio
import ipaddress
import secrets

from shoal.controller.kvipam import KVIpam
from shoal.ipam.api import GLOBAL_DEFAULT, OPT_HOST_BOUND, OPT_OWNER
from shoal.store import open_kv
from shoal.store.kv import Op

POOL = "10.64.0.0/22"


def test_thirty_runs_of_thirty_concurrent_claims_on_three_hosts(etcd3):
    async def one_run(run_no: int) -> None:
        prefix = f"/shq-blocks-{secrets.token_hex(3)}/"
        kvs = [open_kv(etcd3.url) for _ in range(3)]
        try:
            hosts = []
            for i, kv in enumerate(kvs):
                lease = await kv.grant(30)
                ipam = KVIpam(kv, prefix, host=f"192.0.2.{i + 1}:2376", lease=lambda lease=lease: lease)
                ipam.blocks.register(POOL, 28)
                hosts.append(ipam)
            pool_id, _, _ = await hosts[0].request_pool(GLOBAL_DEFAULT, POOL, options={OPT_OWNER: "net"})

            async def claim(i: int) -> tuple[int, str]:
                addr, _ = await hosts[i % 3].request_address(pool_id, "", {OPT_OWNER: f"r{run_no}e{i}",
                                                                           OPT_HOST_BOUND: "true"})
                return i % 3, addr.split("/")[0]

            got = await asyncio.gather(*(claim(i) for i in range(30)))
            ips = [ip for _, ip in got]
            assert len(set(ips)) == 30, sorted(ips)
            holders = await hosts[0].blocks.holders(POOL)
            blocks = [b for bs in holders.values() for b in bs]
            assert len(blocks) == len(set(blocks))
            for h, ip in got:
                mine = holders[f"192.0.2.{h + 1}:2376"]
                assert any(ipaddress.ip_address(ip) in ipaddress.ip_network(b) for b in mine), (ip, mine)
            await kvs[0].txn([], [Op.delete_prefix(prefix)])
        finally:
            for kv in kvs:
                await kv.close()

    async def go():
        for n in range(30):
            await one_run(n)

    asyncio.run(asyncio.wait_for(go(), 300))
