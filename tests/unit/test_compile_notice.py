"""The first compile of a kernel says so, once, on a terminal or in a notebook (issue 21);
a cached kernel loads silently, and redirected stderr stays for errors only."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1].parent
CODE = ("import numpy as np; from coinswarm.kernels.metrics import acc_init_nb; "
        "acc_init_nb(np.zeros(22), 1.0); acc_init_nb(np.zeros(22), 2.0); print('ok')")
NOTICE = "coinswarm: compiling kernels (first run only"


def _run(cache: Path, notice: str | None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_CACHE_DIR": str(cache)}
    env.pop("COINSWARM_COMPILE_NOTICE", None)
    if notice is not None:
        env["COINSWARM_COMPILE_NOTICE"] = notice
    return subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True, timeout=240,
                          check=True)


@pytest.mark.timeout(300)
def test_notice_once_while_compiling_and_never_from_the_cache(tmp_path):
    first = _run(tmp_path / "cache", "1")
    assert first.stdout == "ok\n" and first.stderr.count(NOTICE) == 1, first.stderr
    again = _run(tmp_path / "cache", "1")
    assert again.stderr == "", again.stderr
    redirected = _run(tmp_path / "other", None)  # stderr is a pipe here: no notice
    assert NOTICE not in redirected.stderr
