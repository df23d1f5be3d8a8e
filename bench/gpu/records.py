"""Reading records that may be gzipped (bench/compact_records.py gzips the JSON lines and logs
under bench/results/), for the table and report scripts of this folder."""

import glob
import gzip
import os


def open_record(path):
    """A text stream of PATH, of PATH.gz where PATH is missing, or of a PATH ending in .gz."""
    if not os.path.exists(path) and os.path.exists(path + ".gz"):
        path += ".gz"
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def glob_records(pattern):
    """Sorted paths matching PATTERN or PATTERN.gz; where both a file and its .gz match, the file."""
    plain = set(glob.glob(pattern))
    gz = {p for p in glob.glob(pattern + ".gz") if p[:-3] not in plain}
    return sorted(plain | gz, key=lambda p: p[:-3] if p in gz else p)
