"""The README's main command: `jaxsem example`."""
from jaxsem.cli import main


def test_example_prints_data_summary_and_parameters(capsys):
    assert main(["example"]) == 0
    out = capsys.readouterr().out
    assert "80 clusters" in out and "missing 43" in out
    assert "18 free parameters" in out


def test_help_lists_commands(capsys):
    assert main([]) == 0
    assert "example" in capsys.readouterr().out
