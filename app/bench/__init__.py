"""`chunksum bench`: chunksum's workloads timed against the baselines, in the same run.

=================  ==================================================================
module             holds
=================  ==================================================================
``cli``            the bench's options, and what `chunksum bench` runs
``phases``         the three phases of a run: baselines, chunksum, the obvious arq code
``workloads``      W1-W8: their numbers and exact totals, and how runs are timed
``baselines``      the obvious arq code (and its workers), local sums, the Redis floor
``peers``          W8's peers: polars, DuckDB, pyarrow, awk, Python summing its file
``stream``         W5: streaming a generator or a text file, in a child process
``scaling``        `--scaling`: throughput as worker processes are added
``slow_chunks``    chunks that first await a simulated I/O (W6, `--scaling`, tests)
``worker``         a chunksum worker that also runs the slow chunk job
``naive_worker``   the plain arq worker settings of the obvious arq code
``report``         the table, or every raw number as JSON
``keys``           the bench's own key prefix, queue and job names
=================  ==================================================================

None of it is imported by the product, except this package's ``cli`` by ``app.cli``.
"""
