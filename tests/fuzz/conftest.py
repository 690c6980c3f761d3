"""The fuzz suites' session report: cases run per area (see ``budget.py``)."""

from tests.fuzz.budget import CASES, SCALE


def pytest_terminal_summary(terminalreporter):
    if not CASES:
        return
    parts = ", ".join(f"{area} {n:,}" for area, n in sorted(CASES.items()))
    terminalreporter.write_line(f"fuzz: {sum(CASES.values()):,} cases ({parts}); scale ×{SCALE}")
