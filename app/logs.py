"""Worker log formats: arq's human lines, or one JSON object per line for log shippers."""

import json
import logging
import logging.config
from typing import Any

from arq.logs import default_log_config

from app.errors import ChunksumError


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object: time, level, logger, message, and the fields of a
    chunk record (``extra={"chunk": {...}}``) at the top level."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "chunk", {}),
        }
        if record.exc_info:
            fields["error"] = self.formatException(record.exc_info)
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
