"""Where log lines come from: files followed across rotations, and a watcher that says which
files changed.

    FileWatcher (watch)  -- "these paths changed" -->  FileTail.read_block() (files)
    expand_logpaths (globs): the files a jail's ``logpath`` names
"""

from gardien.sources.files import MAX_LINE_BYTES, FilePosition, FileTail, RawLines, StartMode
from gardien.sources.globs import expand_logpaths, has_glob, parse_logpath_entry
from gardien.sources.watch import FileWatcher

__all__ = [
    "MAX_LINE_BYTES",
    "FilePosition",
    "FileTail",
    "FileWatcher",
    "RawLines",
    "StartMode",
    "expand_logpaths",
    "has_glob",
    "parse_logpath_entry",
]
