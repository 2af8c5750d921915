"""gardien's version, in one place: the package, its commands and setuptools
(``[tool.setuptools.dynamic]`` in pyproject.toml) read it from here. It imports nothing, so
reading it costs nothing and builds need not import gardien."""

__version__ = "0.1.0"
