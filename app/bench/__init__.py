"""`chunksum bench`: chunksum's workloads timed against the baselines, in the same run.

=================  ==================================================================
module             holds
=================  ==================================================================
``cli``            the bench's options, and what `chunksum bench` runs
``phases``         the three phases of a run: baselines, chunksum, the obvious arq code
``workloads``      W1-W7: their numbers and exact totals, and how runs are timed
``datafiles``      the files of W8, W8f and W9 (text, CSV, Parquet), and their exact totals
``file_runs``      how chunksum sums those files: by reference, as raw bytes, a column
``baselines``      the obvious arq code (and its workers), local sums, the Redis floor
``peers``          the files' peers: polars, DuckDB, pyarrow, awk, Python summing a file
``stream``         W5: a generator, or a text file by reference or as raw bytes, in a child
``scaling``        `--scaling`: throughput as worker processes are added
``slow_chunks``    chunks that first await a simulated I/O (W6, `--scaling`, tests)
``worker``         a chunksum worker that also runs the slow chunk job
``naive_worker``   the plain arq worker settings of the obvious arq code
``report``         the table, or every raw number as JSON
``keys``           the bench's own key prefix, queue and job names
=================  ==================================================================

None of it is imported by the product, except this package's ``cli`` by ``app.cli``.
"""
