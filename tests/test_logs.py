"""Tests for app.logs: what a worker's log lines hold."""

import io
import logging

import pytest

from app.errors import FileInputError
from app.logs import ExpectedFailures, JsonFormatter


def logged(error: Exception, formatter: logging.Formatter) -> str:
    """Return what a handler with the ExpectedFailures filter writes for a job that failed
    with ``error``, as arq logs it (``logger.exception``)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ExpectedFailures())
    handler.setFormatter(formatter)
    logger = logging.getLogger("tests.logs")
    logger.addHandler(handler)
    try:
        raise error
    except Exception:
        logger.exception("job failed, %s", error)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


@pytest.mark.parametrize("formatter", [logging.Formatter(), JsonFormatter()])
def test_a_chunksum_error_is_one_line_and_a_bug_keeps_its_traceback(
    formatter: logging.Formatter,
) -> None:
    """A job failed by a chunksum error (a bad line) logs its message alone; any other
    exception, a bug, keeps its traceback."""
    expected = logged(FileInputError("line 3 of f is 'x', not a number"), formatter)
    assert "line 3 of f is 'x'" in expected
    assert "Traceback" not in expected
    assert expected.count("\n") == 1
    assert "Traceback" in logged(KeyError("a bug"), formatter)
