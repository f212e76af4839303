"""One error tree for all of shoal; `api.errors` maps it to HTTP in one place.

- ShoalError            anything unexpected (500)
  - NotFound            no such network, container, image (404)
  - InvalidParameter    bad input caught at the edge (400)
  - Unauthorized        a registry refused the credentials (401)
  - Forbidden           allowed input, refused operation (403)
  - Conflict            name or state clash (409)
  - PayloadTooLarge     a request body over its limit (413)
  - Unavailable         resource exhausted or service down (503)
  - NotModified         nothing to do, e.g. start a running container (304)
  - NotImplementedYet   a known call shoal does not support (501)

The classes mirror libnetwork's error classes, so Docker clients see the same codes.
Messages are written for the user: say what is wrong and, where it helps, what to do.
"""

from __future__ import annotations


class ShoalError(Exception):
    """Base of every error shoal raises on purpose."""

    status = 500

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__


class NotFound(ShoalError):
    status = 404


class InvalidParameter(ShoalError):
    status = 400


class Unauthorized(ShoalError):
    status = 401


class Forbidden(ShoalError):
    status = 403


class Conflict(ShoalError):
    status = 409


class PayloadTooLarge(ShoalError):
    status = 413


class Unavailable(ShoalError):
    status = 503


class NotModified(ShoalError):
    status = 304


class NotImplementedYet(ShoalError):
    status = 501
