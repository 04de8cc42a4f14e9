"""Every Redis key, channel, queue and job name chunksum uses, in one place.

All names start with the deployment's key prefix (``CHUNKSUM_KEY_PREFIX``, default
``chunksum``), so several deployments can share one Redis without seeing each other.
arq adds its own per-job keys (``arq:job:<job id>``, ``arq:in-progress:<job id>``,
``arq:retry:<job id>``); chunksum's job ids start with the run id, which is unique.

================================  ======  ==============================================
key                               type    holds
================================  ======  ==============================================
``<prefix>:queue``                zset    the arq queue the workers read
``<prefix>:runs``                 zset    run ids by creation time, pruned past retention
``<prefix>:workers``              zset    worker ids by last heartbeat
``<prefix>:worker:<worker id>``   hash    a worker's heartbeat: host, pid, job counts
``<prefix>:wake``                 pubsub  a message per enqueued batch: idle workers wake
``<prefix>:wake:<worker id>``     pubsub  a few jobs' wake-up, for that idle worker alone
``<prefix>:idle``                 zset    idle workers' ids by when each went idle
``<prefix>:ended:<run id>``       pubsub  the run's final status, when it ends
``<prefix>:ends``                 pubsub  "<run id> <status>" as any run ends: workers stop
                                          the chunks of a cancelled or failed run
``<prefix>:run:{<run id>}``       hash    the run: status, total, counts, timestamps, error
``<prefix>:partials:{<run id>}``  hash    chunk index -> exact partial sum (idempotence)
``<prefix>:inbox:{<run id>}``     list    partials (and chunk failures) for the submitter
``<prefix>:sender:{<run id>}``    string  the submitter's lease, while it still enqueues
``<prefix>:timeline:{<run id>}``  list    chunk spans: worker, start, end, try (app.timeline)
================================  ======  ==============================================

A run's own keys share the hash tag ``{<run id>}``: on a Redis Cluster they would sit in
one slot, so the scripts that update them together (app.runs) stay valid there. The queue,
the indexes and arq's job keys are not tagged: arq itself needs a single Redis (or a
Sentinel-managed primary), not a Cluster.
"""

from dataclasses import dataclass

from arq.constants import abort_jobs_ss, in_progress_key_prefix, job_key_prefix, retry_key_prefix

DEFAULT_PREFIX = "chunksum"
SUM_CHUNK_JOB = "sum_chunk"
SUM_RANGE_JOB = "sum_range"  # a byte range of a file the workers read themselves
SUM_TEXT_JOB = "sum_text"  # a block of lines of text the submitter ships unparsed
SUM_NPY_JOB = "sum_npy_slice"  # a slice of a .npy array the workers map themselves
SUM_PARQUET_JOB = "sum_parquet_row_group"  # a row group of a Parquet column
SUM_CSV_JOB = "sum_csv_range"  # a byte range of a CSV file, one column of its rows
SUM_CSV_TEXT_JOB = "sum_csv_text"  # a block of CSV rows the submitter ships unparsed
SUM_URL_JOB = "sum_url_range"  # a byte range of a text file by URL (s3://...), via fsspec


@dataclass(frozen=True, slots=True)
class Keys:
    """Names of one deployment's keys, all under ``prefix``."""

    prefix: str = DEFAULT_PREFIX

    @property
    def queue(self) -> str:
        """Return the arq queue (a sorted set) that the workers read."""
        return f"{self.prefix}:queue"

    @property
    def wake_channel(self) -> str:
        """Return the pub/sub channel that tells idle workers the queue has new jobs."""
        return f"{self.prefix}:wake"

    def worker_wake_channel(self, worker_id: str) -> str:
        """Return the pub/sub channel on which one idle worker alone is woken."""
        return f"{self.wake_channel}:{worker_id}"

    @property
    def idle_workers(self) -> str:
        """Return the sorted set of idle workers' ids, by when each went idle."""
        return f"{self.prefix}:idle"

    @property
    def ends_channel(self) -> str:
        """Return the pub/sub channel on which every run's end is announced (for workers)."""
        return f"{self.prefix}:ends"

    @property
    def runs(self) -> str:
        """Return the sorted set of run ids by creation time (for `chunksum runs`)."""
        return f"{self.prefix}:runs"

    @property
    def workers(self) -> str:
        """Return the sorted set of worker ids by last heartbeat (for `chunksum workers`)."""
        return f"{self.prefix}:workers"

    def worker(self, worker_id: str) -> str:
        """Return the hash a live worker keeps up to date (its heartbeat)."""
        return f"{self.prefix}:worker:{worker_id}"

    def run(self, run_id: str) -> str:
        """Return the hash that describes a run and, once done, holds its total."""
        return f"{self.prefix}:run:{{{run_id}}}"

    def partials(self, run_id: str) -> str:
        """Return the hash of chunk index -> encoded partial sum."""
        return f"{self.prefix}:partials:{{{run_id}}}"

    def inbox(self, run_id: str) -> str:
        """Return the list through which workers push partials to the submitter."""
        return f"{self.prefix}:inbox:{{{run_id}}}"

    def sender(self, run_id: str) -> str:
        """Return the key a submitter keeps alive (a lease) while it still enqueues chunks."""
        return f"{self.prefix}:sender:{{{run_id}}}"

    def timeline(self, run_id: str) -> str:
        """Return the list of the run's chunk spans, its task stream (app.timeline)."""
        return f"{self.prefix}:timeline:{{{run_id}}}"

    def ended_channel(self, run_id: str) -> str:
        """Return the pub/sub channel on which a run's end is announced (for `chunksum wait`)."""
        return f"{self.prefix}:ended:{run_id}"

    def run_keys(self, run_id: str) -> tuple[str, str, str, str, str]:
        """Return (run hash, partials hash, inbox list, sender lease, timeline list): the Lua
        scripts' KEYS."""
        return (
            self.run(run_id),
            self.partials(run_id),
            self.inbox(run_id),
            self.sender(run_id),
            self.timeline(run_id),
        )


def job_id(run_id: str, index: int) -> str:
    """Return the arq job id of chunk ``index`` of a run: deterministic, so retries collapse."""
    return f"{run_id}:{index}"


def chunk_of(arq_job_id: str) -> tuple[str, int] | None:
    """Return (run id, chunk index) from a :func:`job_id`, or None for another job's id."""
    run_id, _, index = arq_job_id.rpartition(":")
    if not run_id or not index.isdigit() or not index.isascii():
        return None
    return run_id, int(index)


def job_pattern(run_id: str) -> str:
    """Return a pattern that matches the job ids of every chunk of a run."""
    return f"{run_id}:*"


def arq_job_key(job_id: str) -> str:
    """Return the key where arq keeps a job's definition (arq's own naming)."""
    return job_key_prefix + job_id


def arq_in_progress_key(job_id: str) -> str:
    """Return the key by which arq marks a job as running (arq's own naming)."""
    return in_progress_key_prefix + job_id


def arq_retry_key(job_id: str) -> str:
    """Return the key where arq counts a job's tries (arq's own naming)."""
    return retry_key_prefix + job_id


ARQ_ABORT_SET = abort_jobs_ss  # arq's sorted set of jobs asked to abort (one per Redis)
