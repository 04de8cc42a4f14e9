"""The bench's own key prefix, queue and job names, apart from any deployment's."""

# `chunksum bench` runs under its own prefix, so bench jobs never reach a deployment's workers.
BENCH_PREFIX = "chunksum-bench"
# The benchmark's baseline: the obvious arq code, on a queue and job of its own.
NAIVE_QUEUE = f"{BENCH_PREFIX}:naive-queue"
NAIVE_SUM_JOB = "naive_sum"
# The hand-tuned arq baseline: the same code, tuned (app.bench.tuned_worker).
TUNED_QUEUE = f"{BENCH_PREFIX}:tuned-queue"
TUNED_SUM_JOB = "tuned_sum"
# A chunk job that first awaits a simulated I/O (app.bench.slow_chunks).
SLOW_CHUNK_JOB = "sum_chunk_after_io"


def floor_key(index: int) -> str:
    """Return the key that holds chunk ``index`` in the bench's raw Redis floor (SET/GET)."""
    return f"{BENCH_PREFIX}:floor:{index}"
