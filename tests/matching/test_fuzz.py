"""The native core fuzzed against the Python engine (atheris, coverage-guided): a bounded run
of ``tests/support/fuzz_engines.py`` finds no line the two engines take differently."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.ci import require

FUZZER = Path(__file__).resolve().parents[1] / "support" / "fuzz_engines.py"

pytestmark = pytest.mark.usefixtures("native_core")


def test_fuzzed_lines_match_the_same_in_both_engines(
    tmp_path: Path, fail2ban_samples: Path
) -> None:
    require(
        importlib.util.find_spec("atheris") is not None,
        "atheris is missing (pip install -e '.[test]')",
    )
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    run = subprocess.run(
        [
            sys.executable,
            str(FUZZER),
            "-runs=30000",
            "-max_total_time=90",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
        ],
        capture_output=True,
        text=True,
        timeout=400,
        env={**os.environ, "FAIL2BAN_SAMPLES": str(fail2ban_samples)},
    )
    assert run.returncode == 0, run.stderr[-4000:]
    assert "Done " in run.stderr and " runs in " in run.stderr
    assert len(list(corpus.iterdir())) > 10  # the coverage guidance found new paths
