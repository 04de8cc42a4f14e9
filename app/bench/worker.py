"""`python -m app.bench.worker`: `chunksum worker`, which also runs the bench's slow chunks.

It takes `chunksum worker`'s options (``--burst``, ``--log-level``, ``--metrics-port``...).
"""

import argparse
import sys
from collections.abc import Sequence

from app.bench.slow_chunks import slow_jobs
from app.cli import add_worker_options
from app.settings import Settings
from app.worker.serve import serve


def main(argv: Sequence[str] | None = None) -> int:
    """Run the worker until it is stopped; return its exit status."""
    parser = argparse.ArgumentParser(prog="python -m app.bench.worker", description=__doc__)
    add_worker_options(parser)
    serve(Settings.from_env(), parser.parse_args(argv), jobs=slow_jobs())
    return 0


if __name__ == "__main__":
    sys.exit(main())
