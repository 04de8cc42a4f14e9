"""A worker process: its logs and metrics, and a ChunksumWorker until it is stopped."""

import argparse
from collections.abc import Sequence

from arq.worker import Function

from app import logs, metrics
from app.settings import Settings
from app.worker.chunksum_worker import ChunksumWorker
from app.worker.settings import worker_settings


def serve(
    settings: Settings, options: argparse.Namespace, *, jobs: Sequence[Function] = ()
) -> None:
    """Run a worker with `chunksum worker`'s ``options`` (app.cli) until it is stopped.

    Args:
        jobs: arq functions to register beside chunksum's own (the bench's slow chunk).
    """
    logs.configure(options.log_level, options.log_format)
    if options.metrics_port is not None:
        metrics.serve(options.metrics_port, options.metrics_host)
    ChunksumWorker(**worker_settings(settings, jobs=jobs), burst=options.burst).run()
