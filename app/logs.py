"""Worker log formats: arq's human lines, or one JSON object per line for log shippers.

Either way a record's message and its exception are bounded (app.faults): arq logs a
failed job with its exception's text, which for a redis-py pipeline error would hold the
whole pipeline, payload bytes and all.
"""

import json
import logging
import logging.config
from typing import Any

from arq.logs import default_log_config

from app.errors import ChunksumError
from app.faults import MAX_CHARS, bounded, format_exception

MAX_MESSAGE_CHARS = 2 * MAX_CHARS  # a log line's message: room for arq's prefix and a reason


class TextFormatter(logging.Formatter):
    """arq's human format, with bounded messages and exceptions."""

    def format(self, record: logging.LogRecord) -> str:
        """Format ``record``, its message bounded."""
        message = bounded(record.getMessage(), MAX_MESSAGE_CHARS)
        return super().format(
            logging.makeLogRecord({**record.__dict__, "msg": message, "args": None})
        )

    def formatException(self, ei: Any) -> str:
        """Format an exception's traceback, its message bounded."""
        return format_exception(*ei)


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object: time, level, logger, message, and the fields of a
    chunk record (``extra={"chunk": {...}}``) at the top level."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": bounded(record.getMessage(), MAX_MESSAGE_CHARS),
            **getattr(record, "chunk", {}),
        }
        if record.exc_info:
            fields["error"] = format_exception(*record.exc_info)
        return json.dumps(fields)


class ExpectedFailures(logging.Filter):
    """Log a job that failed with a chunksum error (a bad line, a file gone) as arq's one
    line, without its traceback: the message says what happened; a traceback is for bugs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], ChunksumError):
            record.exc_info = record.exc_text = None
        return True


def configure(level: str, log_format: str) -> None:
    """Send arq's and chunksum's logs to stderr at ``level``, as ``text`` or ``json``."""
    config = default_log_config(verbose=level == "debug")
    text = config["formatters"]["arq.standard"]
    config["formatters"]["arq.standard"] = {
        "()": TextFormatter,
        "fmt": text["format"],
        "datefmt": text["datefmt"],
    }
    if log_format == "json":
        config["formatters"] = {"json": {"()": JsonFormatter}}
        config["handlers"]["arq.standard"] = {
            "level": "DEBUG",
            "class": "logging.StreamHandler",
            "formatter": "json",
        }
    config["filters"] = {"expected": {"()": ExpectedFailures}}
    config["handlers"]["arq.standard"]["filters"] = ["expected"]
    config["loggers"]["app"] = {"handlers": ["arq.standard"], "level": level.upper()}
    config["loggers"]["jobs"] = {"handlers": ["arq.standard"], "level": level.upper()}
    logging.config.dictConfig(config)
    logging.getLogger("arq").setLevel(level.upper())
