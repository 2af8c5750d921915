"""gardien's version, in one place: read by setuptools (pyproject.toml) and by every module that
names it. Imports nothing, so that reading it costs nothing."""

__version__ = "0.1.0"
