"""What the tests share: fixtures (registered by ``tests/conftest.py`` through
``pytest_plugins``) and helpers imported by name (``from support.netns import Lab``).

Test modules import from here, never from one another. pytest puts ``tests/`` on ``sys.path``
(``pythonpath`` in pyproject.toml), so ``support`` is importable from tests and from the
benchmarks (which add ``tests/`` to their path themselves).

Fixtures: :mod:`support.fixtures` (fail2ban's samples and configuration, the samples' time zone,
the .deb built once), :mod:`support.journal` (journal files), :mod:`support.hubdb` (the hub's
databases), :mod:`support.daemon` (a ``gardien run`` process). Helpers: :mod:`support.ci`
(skip locally, fail in CI), :mod:`support.cli` (the ``gardien`` command, in-process or as a
process), :mod:`support.ports`, :mod:`support.netns` (network namespace lab),
:mod:`support.services` (real services in the lab), :mod:`support.samples` (annotated sample
logs), :mod:`support.hubserver`, :mod:`support.smtp_server`, :mod:`support.fail2ban_lab`,
:mod:`support.debroot` (a booted Debian 12 root), :mod:`support.mode_logs`.
"""

from __future__ import annotations

from pathlib import Path

#: the repository's root
REPO = Path(__file__).resolve().parents[2]
#: this directory (mounted into containers that run a helper script)
SUPPORT = Path(__file__).resolve().parent
