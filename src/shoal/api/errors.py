"""The one place where errors become HTTP responses: `{"message": ...}`, Docker's codes."""

from __future__ import annotations

import logging

from shoal.api.http import Response, json_response
from shoal.errors import ShoalError

log = logging.getLogger("shoal.api")


def error_response(exc: BaseException) -> Response:
    if isinstance(exc, ShoalError):
        if exc.status >= 500:
            log.error("%s", exc.message)
        return json_response({"message": exc.message}, exc.status)
    log.exception("unexpected error", exc_info=exc)
    return json_response({"message": f"internal error: {exc}"}, 500)
