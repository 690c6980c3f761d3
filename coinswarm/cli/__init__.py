"""The ``coinswarm`` command line (``coinswarm --help``).

Parsing imports nothing heavy: each sub-command imports the library parts it uses when it runs.
"""

from coinswarm.cli.checks import parse_grid, parse_params, parse_values
from coinswarm.cli.main import build_parser, main

__all__ = ["build_parser", "main", "parse_grid", "parse_params", "parse_values"]
