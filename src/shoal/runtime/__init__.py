"""Images and containers: layered images, overlay mounts, runc, one conmon per container.

- `ImageStore`, `Image` (images.py, imagerecord.py): Docker's image model (config digest =
  id, repo tags and digests, raw manifests) and lookup; `ImageConfig` (imageconfig.py): what
  a container inherits. Blobs and shared layers by ChainID: layers.py; layer tars unpacked
  under shoal's own member policy into overlay form: untar.py; save/load tars: archive.py;
  the single-rootfs store's data migrated: migrate.py.
- `ContainerSpec`, `ExecSpec`, `oci_config` (spec.py): typed specs and the OCI config.json.
- `Runtime`, `ContainerState` (runtime.py): create/start/kill/stop/wait/delete/restore,
  attach, resize, logs, exec; state lives under the daemon's root and survives restarts.
- `Attachment` (attach.py), `ExecSession`, `ExecState` (execs.py): stdio streams for the API.
- `LogEntry` (logs.py); `Stream`, `frame`, `FrameDecoder`, `parse_detach_keys`, `EscapeProxy`
  (streams.py): Docker's stream framing and detach keys.
- monitor.py: why conmon is the monitor, and how it is launched; overlay.py: mount(2) helpers.

Imports only `shoal.errors` from the rest of shoal.
"""

from shoal.runtime.attach import Attachment
from shoal.runtime.execs import ExecSession, ExecState
from shoal.runtime.images import Image, ImageConfig, ImageStore
from shoal.runtime.layers import Layer
from shoal.runtime.logs import LogEntry
from shoal.runtime.runtime import ContainerState, Runtime
from shoal.runtime.spec import ContainerSpec, ExecSpec, oci_config, remove_cgroup_parent
from shoal.runtime.streams import (
    DEFAULT_DETACH_KEYS,
    EscapeProxy,
    FrameDecoder,
    Stream,
    frame,
    parse_detach_keys,
)

__all__ = [
    "DEFAULT_DETACH_KEYS", "Attachment", "ContainerSpec", "ContainerState", "EscapeProxy", "ExecSession",
    "ExecSpec", "ExecState", "FrameDecoder", "Image", "ImageConfig", "ImageStore", "Layer", "LogEntry", "Runtime",
    "Stream", "frame", "oci_config", "parse_detach_keys", "remove_cgroup_parent",
]
