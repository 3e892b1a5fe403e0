"""Bundled example: pupils in schools, a two-level factor model.

``schools.csv`` (regenerate with configs/make_example_data.py) holds 80 schools with
three indicators y1-y3 of an achievement factor, two pupil covariates x1 x2 (WITHIN) and
a school covariate w (BETWEEN); -9999 marks missing values.
"""
from importlib.resources import files

import pandas as pd

EXAMPLE_MODEL = """
%WITHIN%
    fw BY y1-y3;
    fw ON x1 x2;
%BETWEEN%
    fb BY y1-y3;
    fb ON w;
"""
EXAMPLE_ROLES = dict(within=["x1", "x2"], between=["w"], clusters=["school"])
EXAMPLE_MISSING = {"ALL": (-9999,)}


def load_schools() -> pd.DataFrame:
    """The bundled school data as a DataFrame (missing values still coded -9999)."""
    return pd.read_csv(files(__name__) / "schools.csv")
