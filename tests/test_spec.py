"""ModelSpec: pack/unpack, implied moments, and the data generator against them.

Statistical checks use fixed seeds and z-scores against standard errors of the sample
moments; each check allows |z| < 4.5 (two-sided tail 7e-6; about 60 checks in this file
keep the suite-wide false-alarm budget under 1e-3 for any seed).
"""
import jax
import numpy as np
import pytest
from scipy.stats import norm

from jaxsem import Model
from jaxsem.partable import build_partable
from jaxsem.spec import ModelSpec

Z = 4.5
TUTORIAL = ("level: 1\n fw =~ y1 + y2 + y3\n fw ~ x1 + x2 + x3\n level: 2\n"
            " fb =~ y1 + y2 + y3\n fb ~ w1 + w2")


def _values(spec, **by_name):
    """x from a dict 'block: lhs op rhs' -> value (others from start values)."""
    x = spec.start_values()
    names = spec.partable.parameter_names()
    for name, value in by_name.items():
        x[names.index(name.replace("__", ": "))] = value
    return x


def test_pack_unpack_round_trip():
    spec = Model(TUTORIAL).spec
    x = np.random.default_rng(0).normal(size=spec.n_free)
    matrices = spec.unpack(x)
    np.testing.assert_array_equal(spec.pack(matrices), x)
    again = spec.unpack(spec.pack(matrices))
    for a, b in zip(matrices, again):
        for name in a:
            np.testing.assert_array_equal(a[name], b[name])
    within = matrices[0]
    np.testing.assert_array_equal(within["psi"], within["psi"].T)
    assert within["beta"][0, 3] == 1.0  # fixed first loading y1 <- fw


def test_equality_labels_share_one_element():
    spec = Model.from_mplus("%WITHIN%\n fw BY y1\n y2 (1);\n %BETWEEN%\n fb BY y1\n y2 (1);").spec
    x = np.arange(1.0, spec.n_free + 1)
    w, b = spec.unpack(x)
    assert w["beta"][1, 2] == b["beta"][1, 2]


def test_unpack_compiles_once_per_structure():
    spec = Model(TUTORIAL).spec
    traces = []

    @jax.jit
    def f(x):
        traces.append(1)
        return spec.unpack(x)[0]["psi"].sum()

    f(np.zeros(spec.n_free))
    f(np.ones(spec.n_free))
    same_structure = Model(TUTORIAL).spec
    assert same_structure == spec and hash(same_structure) == hash(spec)
    assert len(traces) == 1


def _z(estimate, truth, se):
    return np.abs((np.asarray(estimate) - np.asarray(truth)) / np.asarray(se))


def test_generator_moments_match_implied_moments_two_level():
    spec = Model(TUTORIAL).spec
    x = _values(spec, **{"within__fw=~y2": 0.8, "within__fw=~y3": 1.2, "within__fw~x1": 0.5,
                         "within__fw~x2": 0.3, "within__fw~x3": -0.2, "within__y1~~y1": 0.6,
                         "between__fb=~y2": 0.9, "between__fb=~y3": 1.1,
                         "between__fb~w1": 0.4, "between__fb~~fb": 0.3,
                         "between__y1~1": 1.0, "between__y2~1": 2.0, "between__y3~1": 3.0,
                         "between__y2~~y2": 0.2})
    n_clusters, size = 1500, 12
    frame = spec.simulate(x, jax.random.PRNGKey(42), [size] * n_clusters)
    (mu_w, cov_w), (mu_b, cov_b) = spec.implied_moments(x)
    y = frame[["y1", "y2", "y3"]].to_numpy()
    cluster = frame["cluster"].to_numpy()
    means = np.stack([y[cluster == j].mean(0) for j in range(n_clusters)])
    deviations = y - means[cluster]
    df_w = len(y) - n_clusters
    s_w = deviations.T @ deviations / df_w
    sig_w = np.asarray(cov_w)[:3, :3]
    se_w = np.sqrt((np.outer(np.diag(sig_w), np.diag(sig_w)) + sig_w ** 2) / df_w)
    assert _z(s_w, sig_w, se_w).max() < Z
    sig_means = np.asarray(cov_b)[:3, :3] + sig_w / size
    s_b = np.cov(means.T)
    se_b = np.sqrt((np.outer(np.diag(sig_means), np.diag(sig_means)) + sig_means ** 2)
                   / (n_clusters - 1))
    assert _z(s_b, sig_means, se_b).max() < Z
    se_mean = np.sqrt(np.diag(sig_means) / n_clusters)
    assert _z(y.mean(0), np.asarray(mu_b)[:3] + np.asarray(mu_w)[:3], se_mean).max() < Z


def test_generator_thresholds_match_probit_probabilities():
    model = Model.from_mplus("u ON x;", categorical=["u"])
    spec = ModelSpec(build_partable(model.parsed, model.roles, n_categories={"u": 3}))
    names = spec.partable.parameter_names()
    x = spec.start_values()
    x[names.index("u~x")] = 0.7
    x[names.index("u|t1")] = -0.5
    x[names.index("u|t2")] = 0.8
    n = 40000
    frame = spec.simulate(x, jax.random.PRNGKey(3), n)
    u = frame["u"].to_numpy()
    assert set(np.unique(u)) == {0, 1, 2}
    sd = np.sqrt(1 + 0.7 ** 2)  # latent response: 0.7 x + e, x ~ N(0,1), var(e) = 1
    p = np.array([norm.cdf(-0.5 / sd), norm.cdf(0.8 / sd) - norm.cdf(-0.5 / sd),
                  1 - norm.cdf(0.8 / sd)])
    observed = np.bincount(u.astype(int), minlength=3) / n
    assert _z(observed, p, np.sqrt(p * (1 - p) / n)).max() < Z


def test_generator_random_slopes():
    model = Model.from_mplus("%WITHIN%\n s | y ON x;\n %BETWEEN%\n y WITH s;",
                             within=["x"], clusters=["c"])
    spec = model.spec
    names = spec.partable.parameter_names()
    x = spec.start_values()
    values = {"within: y~~y": 1.0, "between: s~1": 1.0, "between: s~~s": 0.5,
              "between: y~~y": 0.3, "between: y~~s": 0.1, "between: y~1": 2.0}
    for k, v in values.items():
        x[names.index(k)] = v
    n_clusters, size = 600, 40
    frame = spec.simulate(x, jax.random.PRNGKey(7), [size] * n_clusters,
                          cluster_names=["c"])
    slopes = []
    for _, g in frame.groupby("c"):
        xc = g["x"] - g["x"].mean()
        slopes.append((xc * g["y"]).sum() / (xc ** 2).sum())
    slopes = np.array(slopes)
    expected_var = 0.5 + 1.0 / (size - 1)  # slope variance + OLS sampling variance
    assert _z(slopes.mean(), 1.0, np.sqrt(expected_var / n_clusters)) < Z
    se_var = expected_var * np.sqrt(2 / (n_clusters - 1))
    assert _z(slopes.var(ddof=1), expected_var, se_var) < Z


def test_generator_three_levels():
    model = Model.from_mplus("%WITHIN%\n y;\n %BETWEEN class%\n y;\n %BETWEEN school%\n y;",
                             clusters=["school", "class"])
    spec = model.spec
    assert spec.partable.n_free == 4  # three variances and the level-3 mean
    names = spec.partable.parameter_names()
    x = spec.start_values()
    for k, v in {"within: y~~y": 1.0, "class: y~~y": 0.5, "school: y~~y": 0.25,
                 "school: y~1": 3.0}.items():
        x[names.index(k)] = v
    sizes = [[5] * 6] * 400  # 400 schools x 6 classes x 5 pupils
    frame = spec.simulate(x, jax.random.PRNGKey(11), sizes,
                          cluster_names=["school", "class"])
    y = frame["y"].to_numpy()
    class_means = frame.groupby("class")["y"].mean()
    school_of_class = frame.groupby("class")["school"].first()
    school_means = class_means.groupby(school_of_class).mean()
    within_var = frame.groupby("class")["y"].var(ddof=1).mean()
    n_class = len(class_means)
    assert _z(within_var, 1.0, np.sqrt(2 / (len(y) - n_class))) < Z
    class_dev = class_means - school_means[school_of_class].to_numpy()
    var_class = (class_dev ** 2).sum() / (n_class - 400)
    expected = 0.5 + 1.0 / 5
    assert _z(var_class, expected, expected * np.sqrt(2 / (n_class - 400))) < Z
    expected_school = 0.25 + expected / 6
    assert _z(school_means.var(ddof=1), expected_school,
              expected_school * np.sqrt(2 / 399)) < Z
    assert _z(y.mean(), 3.0, np.sqrt(expected_school / 400)) < Z


def test_latent_covariate_generator_decomposes_x():
    """Mplus ex9.1b: x on neither list has a within and a between part."""
    model = Model.from_mplus("%WITHIN%\n y ON x;\n %BETWEEN%\n y ON w x;",
                             between=["w"], clusters=["c"])
    spec = model.spec
    assert spec.blocks[0].observed == ("y", "x") and spec.blocks[1].observed == ("y", "x")
    x = spec.start_values()
    names = spec.partable.parameter_names()
    x[names.index("within: x~~x")] = 1.0
    x[names.index("between: x~~x")] = 0.5
    frame = spec.simulate(x, jax.random.PRNGKey(5), [20] * 800, cluster_names=["c"])
    means = frame.groupby("c")["x"].mean()
    expected = 0.5 + 1.0 / 20
    assert _z(means.var(ddof=1), expected, expected * np.sqrt(2 / 799)) < Z


def test_implied_moments_refuse_random_coefficients():
    spec = Model.from_mplus("%WITHIN%\n s | y ON x;", within=["x"], clusters=["c"]).spec
    with pytest.raises(Exception, match="random coefficients"):
        spec.implied_moments(spec.start_values())
