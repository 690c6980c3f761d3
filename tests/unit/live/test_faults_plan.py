"""The crash-point plan of the fault tests (``COINSWARM_LIVE_FAULT=<point>:<n>``): a bad plan is a
typed error naming the variable, and a good one kills the process exactly at the n-th visit of
its point, never at another point."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from coinswarm.errors import ConfigError
from coinswarm.live import faults


@pytest.mark.parametrize("text", ["nowhere:1", "after_new", "after_new:0", "after_new:-1", "after_new:x", ":2"])
def test_a_bad_plan_is_refused_with_the_valid_points(text):
    with pytest.raises(ConfigError, match=f"COINSWARM_LIVE_FAULT='{text}' is not valid; expected <point>:<n> "
                                          "with point one of before_new, after_new, after_sent, after_ack and n ≥ 1"):
        faults._parse(text)


def test_the_process_is_killed_at_the_nth_visit_of_its_point():
    code = ("import sys\nfrom coinswarm.live import faults\n"
            "for step in ['after_new', 'before_new', 'after_sent', 'after_new', 'after_new']:\n"
            "    faults.point(step); print(step, flush=True)\n")
    env = dict(os.environ, COINSWARM_LIVE_FAULT="after_new:3")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL
    assert done.stdout.split() == ["after_new", "before_new", "after_sent", "after_new"]
    env["COINSWARM_LIVE_FAULT"] = "after_new:0"
    bad = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "ConfigError: COINSWARM_LIVE_FAULT='after_new:0' is not valid" in bad.stderr
