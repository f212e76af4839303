"""`docker update`: new limits and restart policy for a container, as dockerd 20.10 takes
them (daemon/update.go, container/container_unix.go UpdateContainer).

The checks of a create run first (400), then the conflicts with what the container has
(409, "Cannot update container ID: ..."). A running container gets the limits through its
OCI runtime at once; a refusal there (a memory limit below what it uses) changes nothing.
A stopped one gets them at its next start. A new restart policy counts from the next exit.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from shoal.controller.containers import KIND_CONTAINER, Containers
from shoal.errors import Conflict, InvalidParameter, ShoalError
from shoal.runtime import resources


async def update_container(c: Containers, ref: str, body: dict[str, Any]) -> list[str] | None:
    """Apply `body` (a container.UpdateConfig); returns dockerd's warnings (none here)."""
    rec = c.find(ref)
    policy = body.get("RestartPolicy") or {}  # checked by the caller as a create's is
    async with c.live(rec.id).lock:
        rec = c.records[rec.id]
        try:
            host = resources.merge_update(rec.host_config, body)
        except InvalidParameter as exc:
            raise Conflict(f"Cannot update container {rec.id}: {exc.message}") from None
        if policy.get("Name"):
            if rec.auto_remove and policy["Name"] != "no":
                raise Conflict(f"Cannot update container {rec.id}: Restart policy cannot be updated "
                               "because AutoRemove is enabled for the container")
            host["RestartPolicy"] = {"Name": policy["Name"],
                                     "MaximumRetryCount": int(policy.get("MaximumRetryCount") or 0)}
        try:
            lift = body.get("PidsLimit") is not None and body["PidsLimit"] <= 0
            await c.runtime.update_resources(rec.id, resources.oci_resources(host), lift_pids=lift)
        except ShoalError as exc:
            text = exc.message.removeprefix("OCI runtime error: ")
            raise ShoalError(f"Cannot update container {rec.id}: {text}") from None
        rec = dataclasses.replace(rec, host_config=host)
        async with c.ctl.store.transaction() as tx:
            tx.put(KIND_CONTAINER, rec.id, rec.to_dict())
        c.records[rec.id] = rec
    return None  # dockerd 20.10 answers {"Warnings": null} (measured)
