import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from components import load_inputs  # noqa: E402


@pytest.fixture(scope="session")
def inputs():
    """Real 2022–2023 Binance 1h data: BTC, ETH/BTC pair, BTC spot/perp."""
    return load_inputs()
