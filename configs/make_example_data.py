"""Regenerate jaxsem/examples/schools.csv: two-level data simulated from a known model.

Population model (Mplus notation), 80 schools of 8-30 pupils:

    %WITHIN%   fw BY y1@1 y2*0.8 y3*1.2;  fw ON x1*0.5 x2*-0.3;  fw*0.6;  y1-y3*0.5;
    %BETWEEN%  fb BY y1@1 y2*0.9 y3*1.1;  fb ON w*0.4;  fb*0.25;  y1-y3*0.1;
               [y1*10 y2*12 y3*8];

Run:  python configs/make_example_data.py
"""
from pathlib import Path

import jax
import numpy as np

import jaxsem
from jaxsem.examples import EXAMPLE_MODEL, EXAMPLE_ROLES

POPULATION = {
    "within: fw=~y2": 0.8, "within: fw=~y3": 1.2, "within: fw~x1": 0.5,
    "within: fw~x2": -0.3, "within: fw~~fw": 0.6, "within: y1~~y1": 0.5,
    "within: y2~~y2": 0.5, "within: y3~~y3": 0.5,
    "between: fb=~y2": 0.9, "between: fb=~y3": 1.1, "between: fb~w": 0.4,
    "between: fb~~fb": 0.25, "between: y1~~y1": 0.1, "between: y2~~y2": 0.1,
    "between: y3~~y3": 0.1, "between: y1~1": 10.0, "between: y2~1": 12.0,
    "between: y3~1": 8.0,
}


def main() -> None:
    spec = jaxsem.Model.from_mplus(EXAMPLE_MODEL, **EXAMPLE_ROLES).spec
    names = spec.partable.parameter_names()
    x = np.array([POPULATION[n] for n in names])
    sizes = np.random.default_rng(2026).integers(8, 31, size=80)
    frame = spec.simulate(x, jax.random.PRNGKey(2026), sizes, cluster_names=["school"])
    frame = frame[["school", "y1", "y2", "y3", "x1", "x2", "w"]].round(4)
    frame.loc[np.random.default_rng(1).random(len(frame)) < 0.03, "y2"] = np.nan  # missing completely at random
    out = Path(__file__).resolve().parents[1] / "jaxsem/examples/schools.csv"
    frame.to_csv(out, index=False, na_rep="-9999")
    print(f"wrote {out} ({len(frame)} rows, {frame.school.nunique()} schools)")


if __name__ == "__main__":
    main()
