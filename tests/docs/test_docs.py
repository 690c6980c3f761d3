"""The documentation's Python is executed: every ```python block of README.md (each on its own,
as a reader pastes it into a fresh session) and of docs/strategy-guide.md (in order, in one
session, as the guide says).

A block fenced as ```python no-run is shown, not run (for code that needs servers, network
or names the reader supplies); say why in the text around it. Each block runs in a
subprocess (its own interpreter, a temporary working directory) so what it registers or
writes never leaks into the rest of the suite.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```\s*$", re.M | re.S)
NO_RUN = "no-run"

# README blocks that fail as pasted today, by their first line: what is undefined and the fix.
# strict xfail: once README.md is fixed the block passes, the xfail fails, and the entry goes.
README_KNOWN_BROKEN: dict[str, str] = {}  # first line of a block → why it cannot run as pasted


def python_blocks(path: Path) -> list[tuple[int, str, str]]:
    """``(line, info, code)`` of every fenced Python block of a Markdown file."""
    text = path.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        info = match["info"].strip()
        if info.split()[:1] == ["python"]:
            blocks.append((text.count("\n", 0, match.start()) + 1, info, match["body"]))
    return blocks


def run_python(code: str, cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


README_BLOCKS = python_blocks(ROOT / "README.md")
GUIDE_BLOCKS = python_blocks(ROOT / "docs" / "strategy-guide.md")


def _readme_cases():
    for line, info, code in README_BLOCKS:
        first = code.strip().splitlines()[0].strip() if code.strip() else ""
        known = next((why for start, why in README_KNOWN_BROKEN.items() if first.startswith(start)), None)
        marks = []
        if NO_RUN in info.split():
            marks.append(pytest.mark.skip(reason=f"README.md:{line} is fenced `{info}` (shown, not run)"))
        elif known:
            marks.append(pytest.mark.xfail(strict=True, reason=f"README.md:{line}: {known}"))
        yield pytest.param(line, code, id=f"README.md:{line}", marks=marks)


def test_the_docs_have_python_to_run():
    assert len(README_BLOCKS) >= 3 and len(GUIDE_BLOCKS) >= 6
    assert not [b for b in GUIDE_BLOCKS if NO_RUN in b[1].split()], "every block of the guide runs"


@pytest.mark.timeout(420)
@pytest.mark.parametrize("line, code", list(_readme_cases()))
def test_readme_python_block_runs_as_pasted(line, code, tmp_path):
    done = run_python(code, tmp_path, timeout=400)
    assert done.returncode == 0, f"README.md:{line} failed:\n{done.stderr[-3000:]}"


@pytest.mark.timeout(420)
def test_strategy_guide_runs_top_to_bottom(tmp_path):
    """The guide's blocks in order, in one interpreter; a failure names the block's line."""
    parts = []
    for line, _info, code in GUIDE_BLOCKS:
        parts.append(f"print('=== block at line {line}', flush=True)\n"
                     f"exec(compile({code!r}, 'docs/strategy-guide.md:{line}', 'exec'), NS)\n")
    script = "NS = {'__name__': '__main__'}\n" + "".join(parts) + "print('=== guide done')\n"
    done = run_python(script, tmp_path, timeout=400)
    assert done.returncode == 0, textwrap.shorten(done.stdout[-1500:], 1500) + "\n" + done.stderr[-3000:]
    out = done.stdout
    assert "=== guide done" in out
    assert "'breakout'" in out and "<agent ema_gap>" in out   # both registered
    assert "refused:" in out and "not restored:" in out        # the protocol's refusals are shown
    assert "Result 2021-01-01" in out                          # the backtests printed their assumptions
