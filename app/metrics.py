"""Prometheus metrics of a worker process: chunks summed and failed, numbers, durations.

``chunksum worker --metrics-port 9100`` serves them at ``/metrics``. Cluster-wide figures
(runs, queue depth, live workers) are in Redis: `chunksum runs`, `workers` and `health`.
"""

from prometheus_client import Counter, Histogram, start_http_server

CHUNKS = Counter("chunksum_chunks", "Chunks this worker finished, by outcome", ["outcome"])
# bound once: labels() takes a lock and a lookup on each call
DONE, DUPLICATE, RETRIED, FAILED = (
    CHUNKS.labels(outcome) for outcome in ("done", "duplicate", "retried", "failed")
)
NUMBERS = Counter("chunksum_numbers_summed", "Numbers summed by this worker")
CHUNK_SECONDS = Histogram(
    "chunksum_chunk_duration_seconds",
    "Time from a chunk job's start to its sum being done (before it is recorded)",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0),
)


def serve(port: int, host: str) -> None:
    """Serve this process's metrics over HTTP at ``host:port/metrics``, in a thread."""
    start_http_server(port, addr=host)
