"""The README's main command: `jaxsem example`."""
from jaxsem.cli import main


def test_example_prints_data_summary_and_parameters(capsys):
    assert main(["example", "--no-fit"]) == 0
    out = capsys.readouterr().out
    assert "80 clusters" in out and "missing 43" in out
    assert "18 free parameters" in out


def test_example_bayes_fit_recovers_the_population(capsys):
    """configs/make_example_data.py simulated the data at these values."""
    assert main(["example"]) == 0
    out = capsys.readouterr().out
    assert "Convergence: converged" in out
    results = out.split("MODEL RESULTS")[1].split("TECHNICAL 8")[0]
    rows = {}
    for line in results.splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[1].replace(".", "").replace("-", "").isdigit():
            rows.setdefault(fields[0], float(fields[1]))
    assert abs(rows["X1"] - 0.5) < 0.15 and abs(rows["X2"] + 0.3) < 0.15


def test_help_lists_commands(capsys):
    assert main([]) == 0
    assert "example" in capsys.readouterr().out
