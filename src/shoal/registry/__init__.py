"""The registry protocol client: references, credentials, manifests, pull and push.

Imports only `shoal.errors`: the runtime's image store and the controller's pull/push
orchestration build on it."""

from .auth import Credentials, decode_registry_auth
from .client import Endpoint, Registry, Resolved
from .errors import DigestMismatch, RegistryUnreachable, TooManyRequests
from .manifest import Platform, host_platform, parse_platform, select_platform
from .reference import Reference, from_api, parse

__all__ = ["Credentials", "DigestMismatch", "Endpoint", "Platform", "Reference", "Registry", "RegistryUnreachable",
           "Resolved", "TooManyRequests", "decode_registry_auth", "from_api", "host_platform", "parse",
           "parse_platform", "select_platform"]
