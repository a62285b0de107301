"""structlog set-up: JSON lines in production, key=value in development.

``configure`` is called once, from a service's ``__main__``. Request-scoped values (request id,
RPC method) are bound with structlog's contextvars by the interceptors in ``facegrid.request_id``
and appear on every line logged while the request runs.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

LogFormat = Literal["json", "console"]


def configure(service: str, log_format: LogFormat = "console", level: str = "INFO") -> None:
    """Configures structlog and stdlib logging for one process, one event per line."""
    renderer: structlog.types.Processor
    if log_format == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.processors.KeyValueRenderer(
            key_order=["timestamp", "level", "service", "event"], drop_missing=True
        )
    numeric_level = logging.getLevelName(level.upper())
    if not isinstance(numeric_level, int):
        numeric_level = logging.INFO
    logging.basicConfig(stream=sys.stdout, level=numeric_level, format="%(message)s")

    def add_service(
        _logger: object, _method: str, event: structlog.types.EventDict
    ) -> structlog.types.EventDict:
        event.setdefault("service", service)
        return event

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_service,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=True,
    )
