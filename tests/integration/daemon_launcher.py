"""A pre-imported launcher for the SIGKILL tests: one Python process imports the daemon's
modules once (ccxt, SQLAlchemy, numba's cached kernels …: ~3 s of CPU per cold start) and then
**forks** one real daemon process per request, which runs ``coinswarm live run`` through the
same entry point as the command line (:func:`coinswarm.cli.main.main`): config, broker start
(ccxt ``load_markets`` against the venue), start-up-is-recovery, the bar loop. Only the
interpreter and the imports are shared; each child is a fresh process with its own ledger
connection, broker and fault plan (:func:`coinswarm.live.faults.arm`), and a fault point
SIGKILLs the child itself.

Protocol (one JSON object per line): the test writes ``{"argv": [...], "env": {...}, "stderr":
PATH}``; the launcher answers ``{"pid": N}`` when the child is forked, then ``{"pid": N,
"signal": S, "code": C}`` when it has ended (``signal`` 9 for a SIGKILL). End of stdin ends it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _preload() -> None:
    """Import what ``coinswarm live run`` imports and warm the per-process caches a fork inherits
    (argparse tree, SQLAlchemy mappers, Alembic, the strategy's cached kernels, ccxt's classes)."""
    import ccxt.async_support  # noqa: F401  the exchange classes (~1 s)

    import coinswarm.cli.live  # noqa: F401
    import coinswarm.live.daemon  # noqa: F401
    import coinswarm.live.feeds  # noqa: F401
    import coinswarm.live.replay  # noqa: F401
    import coinswarm.live.venue  # noqa: F401
    from coinswarm.cli.main import build_parser
    from coinswarm.live.ccxt_broker import ApiKeys, CcxtBroker
    from coinswarm.live.ledger import Ledger
    from coinswarm.live.stepper import Stepper

    build_parser()
    ledger = Ledger("sqlite://")  # in memory: migrations and mappers, nothing on disk
    ledger.migrate()
    ledger.orders()
    ledger.close()
    Stepper("trend", ["BTC/USDT"], None)
    CcxtBroker("binance", keys=ApiKeys("k", "s"), sandbox=True, api_url="http://127.0.0.1:9")  # never started


def die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent dies (no daemon outlives a killed test)."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the launcher still ends at end of stdin
        pass


def _child(request: dict) -> None:
    """In the forked child: become the daemon (never returns)."""
    code = 3
    try:
        die_with_parent()
        fd = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(fd, 2)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.environ.clear()
        os.environ.update(request["env"])
        from coinswarm.cli.main import main
        from coinswarm.live import faults

        faults.arm()
        code = main(request["argv"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001  reported on the child's stderr
        import traceback

        traceback.print_exc()
    finally:
        sys.stderr.flush()
        os._exit(code or 0)


def serve() -> None:
    """Read requests from stdin, fork, report (see the module docstring)."""
    _preload()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
        print(json.dumps({"pid": pid, "signal": sig, "code": code}), flush=True)


class Launcher:
    """The test's side: a launcher process (context manager) that runs daemons one at a time."""

    def __init__(self, env: dict) -> None:
        self.env = env

    def __enter__(self) -> Launcher:
        self.proc = subprocess.Popen([sys.executable, __file__], env=self.env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert json.loads(self._line(120)).get("ready"), "the launcher did not start"
        return self

    def _line(self, timeout: float) -> str:
        import select

        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError(f"the launcher said nothing for {timeout} s")
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"the launcher died (exit {self.proc.wait(5)})")
        return line

    def start(self, argv: list[str], env: dict, stderr: Path) -> int:
        """Fork one daemon running ``coinswarm <argv>``; its pid."""
        self.stderr = stderr
        self.proc.stdin.write(json.dumps({"argv": argv, "env": env, "stderr": str(stderr)}) + "\n")
        self.proc.stdin.flush()
        self.pid = json.loads(self._line(30))["pid"]
        self.running = True
        return self.pid

    def terminate(self) -> None:
        """SIGTERM the running daemon (a graceful stop)."""
        os.kill(self.pid, signal.SIGTERM)

    def wait(self, timeout: float, *, kill: bool = True) -> tuple[int, int | None]:
        """``(signal, exit code)`` of the daemon when it ends; after ``timeout`` it is SIGKILLed
        and an AssertionError raised (``kill=False``: the TimeoutError is raised, the daemon left running)."""
        try:
            done = json.loads(self._line(timeout))
        except TimeoutError:
            if not kill:
                raise
            os.kill(self.pid, signal.SIGKILL)
            self._line(30)
            self.running = False
            raise AssertionError(f"daemon {self.pid} did not finish in {timeout} s: "
                                 f"{self.stderr.read_text()[-2000:]}") from None
        self.running = False
        return done["signal"], done["code"]

    def run(self, argv: list[str], env: dict, stderr: Path, timeout: float,
            kill_after: float | None = None) -> tuple[int, int | None]:
        """:meth:`start` then :meth:`wait`; with ``kill_after``, a daemon still running after that
        many seconds is SIGKILLed by the caller (a kill at a random moment)."""
        self.start(argv, env, stderr)
        if kill_after is not None:
            try:
                return self.wait(kill_after, kill=False)
            except TimeoutError:
                os.kill(self.pid, signal.SIGKILL)
        return self.wait(timeout)

    def __exit__(self, *exc: object) -> None:
        if getattr(self, "running", False):  # a failed test left a daemon running: it goes first
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    die_with_parent()
    serve()
