"""1. Determinism: the same inputs give bit-identical outputs, also across processes
and with numba switched off (the plain-Python twins)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from components import ALL, input_kind, outputs


@pytest.mark.parametrize("name", ALL)
def test_repeated_runs_are_bit_identical(name, inputs):
    prices = inputs[input_kind(name)]
    first, second = outputs(name, prices), outputs(name, prices)
    assert first.shape == second.shape
    assert np.array_equal(first, second, equal_nan=True)


TWIN_SCRIPT = """
import json, sys, numpy as np
sys.path.insert(0, {here!r})
from components import ALL, head, input_kind, load_inputs, outputs
inputs = load_inputs("2023-01-01", "2023-03-31")
print(json.dumps({{n: outputs(n, inputs[input_kind(n)]).tobytes().hex() for n in ALL}}))
"""


def _run_twin(disable_numba: bool) -> dict:
    env = dict(os.environ, COINSWARM_DISABLE_NUMBA="1" if disable_numba else "0")
    script = TWIN_SCRIPT.format(here=str(Path(__file__).parent))
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_numba_and_python_twins_agree_bit_for_bit():
    compiled, python = _run_twin(False), _run_twin(True)
    assert set(compiled) == set(ALL)
    for name in ALL:
        assert compiled[name] == python[name], f"{name}: numba and Python twins differ"
