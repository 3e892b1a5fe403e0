"""The parameter table: one row per parameter, the single source of truth.

:func:`build_partable` turns a :class:`~jaxsem.syntax.statements.ParsedModel` (what the
user wrote) into a :class:`ParTable` (every parameter of the model, user-written and
default), given the variable roles that Mplus takes from its VARIABLE command (WITHIN,
BETWEEN, CATEGORICAL, CLUSTER). The defaults are small named rules in
:mod:`jaxsem.defaults`; every default row records the rule that made it.

Levels: 1 is within; 2 and 3 are the cluster levels. A *block* is one level's model
(two blocks at level 2 for a cross-classified model). Variables at a between level are
the between parts of the observed variables (Mplus and lavaan convention: ``y`` at the
between level means the cluster-level part of ``y``).
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Iterable, Mapping, Sequence

import pandas as pd

from jaxsem.data import Roles
from jaxsem.errors import ModelError, ModelSyntaxError
from jaxsem.syntax.statements import Modifier, ParsedModel, SourceLoc, Term

#: Parameter kinds that may share an equality label.
LABEL_GROUPS = {
    "loading": "coefficient", "regression": "coefficient",
    "intercept": "location", "mean": "location",
    "threshold": "threshold",
    "variance": "variance", "residual_variance": "variance",
    "covariance": "covariance", "residual_covariance": "covariance",
}


@dataclass(frozen=True)
class ParRow:
    """One parameter.

    ``free``: 0 for a fixed parameter, else the 1-based index of its element in the
    free-parameter vector ``x`` (rows with one equality label share an index).
    ``value``: the fixed value (NaN when free). ``start``: the user's start value or NaN.
    ``random``: for a random coefficient, the name of the latent variable (one level up)
    that replaces the parameter; such a row is neither free nor fixed.
    ``origin``: "user", "growth", or "default:<rule name>".
    """
    lhs: str
    op: str
    rhs: str
    block: str
    level: int
    kind: str
    free: int = 0
    value: float = math.nan
    start: float = math.nan
    label: str = ""
    prior: object = None
    random: str = ""
    origin: str = "user"
    line: int = 0
    col: int = 0


@dataclass(frozen=True)
class Block:
    """One level's model: its name, level number and variables.

    ``observed``: observed variables modelled here (outcomes, indicators, and the
    between parts of within-varying variables), in order. ``latent``: factors, random
    coefficients and growth factors of this block. ``covariates``: observed variables
    that are conditioned on here (no distribution, no parameters).
    """
    name: str
    level: int
    observed: tuple[str, ...]
    latent: tuple[str, ...]
    covariates: tuple[str, ...]


@dataclass
class ParTable:
    """All parameters of a model, plus what the rows alone do not say."""
    rows: list[ParRow]
    blocks: tuple[Block, ...]
    dialect: str
    definitions: list = field(default_factory=list)
    constraints: list = field(default_factory=list)
    new_parameters: list = field(default_factory=list)
    variable_levels: dict[str, frozenset[int]] = field(default_factory=dict)
    categorical: dict[str, int | None] = field(default_factory=dict)
    text: str = ""

    @property
    def n_free(self) -> int:
        """Number of free parameters (equality-constrained rows count once)."""
        return max((r.free for r in self.rows), default=0)

    @property
    def n_levels(self) -> int:
        return max(b.level for b in self.blocks)

    def free_rows(self) -> list[ParRow]:
        """The first row of each free parameter, in free-index order."""
        first: dict[int, ParRow] = {}
        for r in self.rows:
            if r.free and r.free not in first:
                first[r.free] = r
        return [first[k] for k in sorted(first)]

    def parameter_names(self) -> list[str]:
        """Readable names of the free parameters, e.g. ``between: fb=~y2``."""
        names = []
        for r in self.free_rows():
            base = f"{r.lhs}{r.op}{r.rhs}"
            names.append(base if len(self.blocks) == 1 else f"{r.block}: {base}")
        return names

    def block(self, name: str) -> Block:
        return next(b for b in self.blocks if b.name == name)

    def to_frame(self) -> pd.DataFrame:
        """The table as a DataFrame (one row per parameter)."""
        frame = pd.DataFrame([r.__dict__ for r in self.rows])
        frame["prior"] = [str(p) if p is not None else "" for p in frame["prior"]]
        return frame

    def __str__(self) -> str:
        cols = ["block", "lhs", "op", "rhs", "kind", "free", "value", "label", "random",
                "origin"]
        return self.to_frame()[cols].to_string(index=False)


# --------------------------------------------------------------------------- levels

def resolve_levels(parsed: ParsedModel, roles: Roles,
                   n_levels: int | None = None) -> dict[str, tuple[int, str]]:
    """Map each level name in the text to (level number, block name).

    ``n_levels`` forces the number of levels (Mplus TYPE = TWOLEVEL with a MODEL that
    only has %WITHIN%); otherwise it follows from the text and ``roles.clusters``.
    """
    named = [n for n in parsed.levels if n not in ("within", "between", "level3")]
    clusters = [c.lower() if parsed.dialect == "mplus" else c for c in roles.clusters]
    n_levels = n_levels or (len(clusters) + 1 if clusters and not roles.crossed
                                  else (2 if clusters else 1))
    if "level3" in parsed.levels or len(named) >= 2 and not roles.crossed:
        n_levels = max(n_levels, 3)
    if "between" in parsed.levels or named:
        n_levels = max(n_levels, 2)
    out: dict[str, tuple[int, str]] = {"within": (1, "within")}
    for name in parsed.levels:
        if name == "within":
            continue
        if name == "between":
            if n_levels > 2 and not roles.crossed:
                raise ModelError("%BETWEEN% (or level: 2) is ambiguous in a three-level "
                                 "model: name the level, e.g. %BETWEEN " +
                                 (clusters[-1] if clusters else "classroom") + "%")
            out[name] = (2, "between")
        elif name == "level3":
            out[name] = (3, clusters[0] if len(clusters) == 2 else "level3")
        elif roles.crossed:
            out[name] = (2, name)
        elif clusters:
            if name not in clusters:
                raise ModelError(f"%BETWEEN {name}% names no cluster variable: the "
                                 f"cluster variables are {', '.join(clusters)}")
            out[name] = (len(clusters) + 1 - clusters.index(name), name)
        elif len(named) == 1:
            out[name] = (2, name)
        else:
            raise ModelError(f"the model names levels {', '.join(named)}: give the cluster "
                             "variables, highest level first (clusters=[...], Mplus "
                             "CLUSTER = level3 level2), to tell which is which")
    if n_levels == 2 and "between" not in out and not named:
        out["between"] = (2, "between")
    for lv in range(2, n_levels + 1):
        if not any(num == lv for num, _ in out.values()):
            if n_levels == 2:
                out["between"] = (2, "between")
            else:
                name = clusters[n_levels - lv] if len(clusters) == n_levels - 1 else f"level{lv}"
                out[name] = (lv, name)
    return out


# --------------------------------------------------------------------------- builder

def build_partable(parsed: ParsedModel, roles: Roles = Roles(), *,
                   n_categories: Mapping[str, int] | None = None,
                   n_levels: int | None = None) -> ParTable:
    """Apply the dialect's default rules to what the user wrote; number free parameters.

    ``roles``: WITHIN/BETWEEN/CATEGORICAL/CLUSTER as in Mplus's VARIABLE command.
    ``n_categories``: categorical variable -> number of categories (from the data);
    thresholds of a categorical variable without a count are left out until it is known.
    """
    from jaxsem import defaults  # noqa: PLC0415 (defaults imports this module)

    levels = resolve_levels(parsed, roles, n_levels)
    ctx = defaults.ModelContext.from_parsed(parsed, roles, levels, n_categories or {})
    rows = defaults.apply_rules(ctx)
    rows = _attach_priors(rows, parsed)
    rows = _number_free_parameters(rows, parsed.text)
    table = ParTable(rows=rows, blocks=ctx.blocks(), dialect=parsed.dialect,
                     definitions=list(parsed.definitions),
                     constraints=list(parsed.constraints),
                     new_parameters=list(parsed.new_parameters),
                     variable_levels=dict(ctx.variable_levels),
                     categorical=dict(ctx.categorical), text=parsed.text)
    _check_expression_names(table)
    defaults.check_identification(table)
    return table


def term_kind(term: Term, dependent: bool) -> str:
    """The kind of parameter a term is, given whether its lhs is dependent in its block."""
    if term.op == "=~":
        return "loading"
    if term.op == "~":
        return "regression"
    if term.op == "|":
        return "threshold"
    if term.op == "~1":
        return "intercept" if dependent else "mean"
    if term.lhs == term.rhs:
        return "residual_variance" if dependent else "variance"
    return "residual_covariance" if dependent else "covariance"


def row_from_term(term: Term, block: str, level: int, kind: str,
                  origin: str | None = None) -> ParRow:
    """A ParRow for a user term (fixed/free/start/label from its modifier)."""
    mod = term.mod
    loc = term.loc or SourceLoc(0, 0)
    value = mod.fixed if mod.fixed is not None else math.nan
    start = mod.start if mod.start is not None else math.nan
    return ParRow(term.lhs, term.op, term.rhs, block, level, kind,
                  free=0 if (mod.fixed is not None or term.random) else -1,
                  value=value, start=start, label=mod.label or "", prior=mod.prior,
                  random=term.random or "", origin=origin or term.origin,
                  line=loc.line, col=loc.col)


def _attach_priors(rows: list[ParRow], parsed: ParsedModel) -> list[ParRow]:
    """Give rows the MODEL PRIORS priors of their labels; unknown labels are errors."""
    if not parsed.priors:
        return rows
    labels = {r.label for r in rows if r.label}
    for label, (prior, loc) in parsed.priors.items():
        if label not in labels:
            near = ", ".join(sorted(labels)[:8]) or "none"
            raise ModelSyntaxError(
                f"MODEL PRIORS gives a prior to '{label}', but no parameter has that label",
                None, loc.line if loc else None, loc.col if loc else None,
                f"label the parameter in MODEL, e.g. 'y ON x ({label});' (labels in the "
                f"model: {near})")
    out = []
    for r in rows:
        if r.label in parsed.priors:
            prior = parsed.priors[r.label][0]
            if r.free == 0:
                raise ModelError(f"'{r.label}' has a prior but the parameter "
                                 f"{r.lhs} {r.op} {r.rhs} ({r.block}) is fixed: free it "
                                 "or remove the prior")
            r = replace(r, prior=prior)
        out.append(r)
    return out


def _number_free_parameters(rows: list[ParRow], text: str) -> list[ParRow]:
    """Assign free indices; rows sharing a label share one (after checking the kinds)."""
    by_label: dict[str, list[ParRow]] = defaultdict(list)
    for r in rows:
        if r.label and not r.random:
            by_label[r.label].append(r)
    for label, group in by_label.items():
        kinds = {LABEL_GROUPS[r.kind] for r in group}
        if len(kinds) > 1:
            a, b = group[0], next(r for r in group if LABEL_GROUPS[r.kind] != LABEL_GROUPS[group[0].kind])
            raise ModelSyntaxError(
                f"label '{label}' is given to a {a.kind.replace('_', ' ')} "
                f"({a.lhs} {a.op} {a.rhs}, line {a.line}) and to a "
                f"{b.kind.replace('_', ' ')} ({b.lhs} {b.op} {b.rhs})", text,
                b.line or None, b.col or None,
                "equality labels join parameters of one kind; for other relations use "
                "MODEL CONSTRAINT (Mplus) or == (lavaan)")
        fixed = {r.value for r in group if r.free == 0}
        if fixed and any(r.free != 0 for r in group):
            f = next(r for r in group if r.free == 0)
            raise ModelSyntaxError(
                f"label '{label}' joins a fixed parameter ({f.lhs} {f.op} {f.rhs} = "
                f"{f.value:g}) and a free one", text, f.line or None, f.col or None,
                "fix all of them at the same value, or free all of them")
        if len(fixed) > 1:
            raise ModelError(f"label '{label}' fixes parameters at different values "
                             f"({', '.join(f'{v:g}' for v in sorted(fixed))})")
        priors = {str(r.prior) for r in group if r.prior is not None}
        if len(priors) > 1:
            raise ModelError(f"label '{label}' joins parameters with different priors: "
                             f"{', '.join(sorted(priors))}")
    index_of_label: dict[str, int] = {}
    out, n = [], 0
    for r in rows:
        if r.free == 0:
            out.append(r)
            continue
        if r.label and r.label in index_of_label:
            out.append(replace(r, free=index_of_label[r.label]))
            continue
        n += 1
        if r.label:
            index_of_label[r.label] = n
        out.append(replace(r, free=n))
    return out


def _check_expression_names(table: ParTable) -> None:
    """Every name in := / NEW / constraints is a label, a NEW parameter or defined."""
    known = {r.label for r in table.rows if r.label}
    known |= {name for name, _ in table.new_parameters}
    defined = set()
    for d in table.definitions:
        _require_names(d.expr.names(), known | defined, d.loc, table.text,
                       f"the definition of '{d.name}'")
        defined.add(d.name)
    for c in table.constraints:
        _require_names(c.lhs.names() | c.rhs.names(), known | defined, c.loc, table.text,
                       "a constraint")


def _require_names(names: Iterable[str], known: set[str], loc: SourceLoc | None,
                   text: str, where: str) -> None:
    for name in sorted(names):
        if name not in known:
            raise ModelSyntaxError(
                f"{where} uses '{name}', which is not a parameter label", text,
                loc.line if loc else None, loc.col if loc else None,
                "label the parameter in the model (y ~ b*x, or y ON x (b);) and use the "
                "label here")


def unique(seq: Sequence[str]) -> tuple[str, ...]:
    """Items in first-seen order without repeats."""
    return tuple(dict.fromkeys(seq))
