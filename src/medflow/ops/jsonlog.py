"""Structured JSON log lines (MEDFLOW_LOG_FORMAT=json), one object a line, carrying the request
id and the user id. Only the message and a fixed set of operational fields are written: never
request bodies, query strings or SQL parameters."""

import logging
import traceback
from datetime import UTC, datetime

import orjson

# Extra attributes copied from a record when a log call sets them (all free of PHI).
FIELDS = ("method", "path", "status", "duration_ms", "sql", "many")


class RequestContextFilter(logging.Filter):
    """Put the current request id and user id on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        from medflow.ops.middleware import request_id_var, user_id_var

        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        if not hasattr(record, "user_id"):
            record.user_id = user_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "user_id": getattr(record, "user_id", None),
        }
        for field in FIELDS:
            if hasattr(record, field):
                entry[field] = getattr(record, field)
        if record.exc_info and record.exc_info[0] is not None:
            # The exception's type and stack, not its message (which may quote data).
            entry["exception"] = record.exc_info[0].__name__
            entry["stack"] = "".join(traceback.format_tb(record.exc_info[2]))
        return orjson.dumps(entry, default=str).decode()
