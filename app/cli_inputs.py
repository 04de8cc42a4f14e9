"""What `chunksum run` and `chunksum submit` sum: ``--range``, ``--file`` (by its format,
read by the workers if they see it), or the lines piped in."""

import os
import sys
from dataclasses import dataclass

from app import arrays
from app.arrays import NpyFile
from app.csvfiles import CsvColumn
from app.errors import ChunksumError
from app.files import TextFile
from app.inputs import inclusive_range
from app.parquet import ParquetColumn, load_column
from app.remote import is_url
from app.sources import Input
from app.text_blocks import TextStream

# formats by extension; a .tsv is a CSV file delimited by tabs
FORMATS = {".npy": "npy", ".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "csv"}


@dataclass(frozen=True, slots=True)
class FileOptions:
    """How the command line reads ``--file``: ``--shared``, ``--format``, ``--column``,
    ``--delimiter``, ``--header``/``--no-header``."""

    shared: bool = False
    form: str | None = None  # None: from the file's extension
    column: str | None = None
    delimiter: str | None = None  # None: a tab for a .tsv file, else a comma
    header: bool = True


def command_line_input(
    first_last: tuple[int, int] | None, path: str | None, options: FileOptions
) -> Input:
    """Return what `chunksum run`/`submit` sum: ``--range``; ``--file``, read by the workers
    if they see it (``--shared``), else by this process; or the lines piped in."""
    if first_last is not None:
        return inclusive_range(*first_last)
    if path not in (None, "-"):
        return _file_input(path, options)
    if path == "-" or not sys.stdin.isatty():
        if options.form not in (None, "lines"):
            raise ChunksumError(
                f"--format {options.form} reads a file: give --file PATH (stdin is read as "
                "lines of numbers)"
            )
        return TextStream(sys.stdin.buffer, "<stdin>")
    raise ChunksumError("no numbers: give --range FIRST LAST, --file PATH, or pipe them in")


def _file_input(path: str, options: FileOptions) -> Input:
    extension = os.path.splitext(path)[1].lower()
    form = options.form or FORMATS.get(extension, "lines")
    if is_url(path) and form != "lines":
        raise ChunksumError(
            f"{path!r}: a URL is read as text, one number per line (--format lines); "
            f"{form} files by URL are not supported yet: copy it to a local path"
        )
    if form == "npy":
        return NpyFile(path) if options.shared else arrays.load(path)
    if form == "lines":
        return TextFile(path, shared=options.shared or is_url(path))
    if options.column is None:
        kind = "CSV" if form == "csv" else "Parquet"
        raise ChunksumError(f"{path!r} is a {kind} file: name its --column")
    if form == "parquet":
        column = options.column
        return ParquetColumn(path, column) if options.shared else load_column(path, column)
    delimiter = options.delimiter or ("\t" if extension == ".tsv" else ",")
    index: str | int = int(options.column) if options.column.isdigit() else options.column
    return CsvColumn(path, index, delimiter, options.header, shared=options.shared)
