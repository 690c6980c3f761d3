"""``coinswarm evidence --suite portfolio``: bad input exits 2 with one clear line, before any work."""

from coinswarm.cli import main


def test_portfolio_suite_refuses_bad_sizes_and_late_data(tmp_path, capsys):
    out = str(tmp_path / "r")
    assert main(["evidence", "--suite", "portfolio", "--sizes", "3", "--out", out]) == 2
    assert "--sizes" in capsys.readouterr().err
    assert main(["evidence", "--suite", "portfolio", "--sizes", "2,x", "--out", out]) == 2
    assert "--sizes" in capsys.readouterr().err
    assert main(["evidence", "--suite", "portfolio", "--end", "2025-03-01", "--out", out]) == 2
    assert "reserved" in capsys.readouterr().err
    assert main(["evidence", "--suite", "nope", "--out", out]) == 2
