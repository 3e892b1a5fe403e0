"""The user's entry point: a model text plus variable roles -> ParTable, ModelSpec, Data.

>>> model = Model('''
...     level: 1
...         fw =~ y1 + y2 + y3
...     level: 2
...         fb =~ y1 + y2 + y3
... ''')
>>> model.partable.n_free
15

Both dialects are accepted; ``dialect=None`` recognises lavaan syntax by its operators
(``=~ ~ ~~``), anything else is read as an Mplus MODEL command. Roles follow Mplus's
VARIABLE command: ``within``, ``between``, ``categorical``, ``clusters`` (highest level
first). In lavaan syntax, as in lavaan, a variable's levels follow from the blocks it
appears in.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Mapping, Sequence

import pandas as pd

from jaxsem.data import Data, Roles, prepare_data
from jaxsem.errors import DataError, ModelError, ModelSyntaxError
from jaxsem.partable import ParTable, build_partable
from jaxsem.priors import parse_model_priors, parse_prior
from jaxsem.spec import ModelSpec
from jaxsem.syntax.expressions import parse_model_constraint
from jaxsem.syntax.lavaan import parse_lavaan_model
from jaxsem.syntax.mplus import parse_mplus_model
from jaxsem.syntax.statements import ParsedModel

_LAVAAN_OPERATOR = re.compile(r"=~|~~|~|:=")
_COMMENT = re.compile(r"[#!][^\n]*")


def detect_dialect(text: str) -> str:
    """"lavaan" if the text uses lavaan operators, else "mplus"."""
    return "lavaan" if _LAVAAN_OPERATOR.search(_COMMENT.sub("", text)) else "mplus"


class Model:
    """A multilevel SEM: what the user wrote, with the defaults of its dialect."""

    def __init__(self, syntax: str, *, dialect: str | None = None,
                 within: Sequence[str] = (), between: Sequence[str] = (),
                 between_levels: Mapping[str, int] | None = None,
                 categorical: Sequence[str] = (), clusters: Sequence[str] | str = (),
                 crossed: bool = False, n_levels: int | None = None,
                 constraints: str | None = None,
                 priors: str | Mapping[str, str] | None = None,
                 names: Sequence[str] | None = None):
        if not isinstance(syntax, str) or not syntax.strip():
            raise ModelError("the model text is empty: write at least one statement, "
                             "e.g. 'f =~ y1 + y2 + y3' or 'f BY y1-y3;'")
        self.dialect = dialect or detect_dialect(syntax)
        if self.dialect not in ("lavaan", "mplus"):
            raise ModelError(f"unknown dialect {dialect!r}: use 'lavaan' or 'mplus'")
        if self.dialect == "mplus":
            self.parsed = parse_mplus_model(syntax, names=names)
        else:
            self.parsed = parse_lavaan_model(syntax)
        if constraints:
            _add_constraints(self.parsed, constraints)
        if priors:
            _add_priors(self.parsed, priors)
        self.roles = Roles(clusters=(clusters,) if isinstance(clusters, str) else tuple(clusters),
                           crossed=crossed, within=tuple(within), between=tuple(between),
                           between_levels=dict(between_levels or {}),
                           categorical=tuple(categorical))
        self.n_levels = n_levels

    @classmethod
    def from_mplus(cls, text: str, **roles) -> "Model":
        """A model from the body of an Mplus MODEL command."""
        return cls(text, dialect="mplus", **roles)

    @classmethod
    def from_lavaan(cls, text: str, **roles) -> "Model":
        """A model from lavaan model syntax."""
        return cls(text, dialect="lavaan", **roles)

    @cached_property
    def partable(self) -> ParTable:
        """Every parameter of the model (thresholds appear once categories are known)."""
        return build_partable(self.parsed, self.roles, n_levels=self.n_levels)

    @cached_property
    def spec(self) -> ModelSpec:
        return ModelSpec(self.partable)

    def __str__(self) -> str:
        return str(self.partable)

    def prepare(self, frame: pd.DataFrame, *, cluster: Sequence[str] | str | None = None,
                missing: Mapping[str, tuple] | None = None,
                centering: Mapping[str, str] | None = None,
                define: Sequence[tuple[str, str]] = (),
                usevariables: Sequence[str] | None = None) -> "Analysis":
        """Check the data against the model and turn both into arrays.

        ``cluster``: cluster variable(s), highest level first (overrides ``clusters``).
        ``missing``/``centering``/``define``: as Mplus's MISSING, CENTERING and DEFINE
        (see :class:`jaxsem.data.Roles`).

        The analysis variables are those the model uses. A WITHIN, BETWEEN or
        CATEGORICAL role of a variable the model does not use is ignored (the variable
        is not analysed, as the ParTable already leaves it out) and named in
        ``data.report``.
        """
        clusters = self.roles.clusters if cluster is None else (
            (cluster,) if isinstance(cluster, str) else tuple(cluster))
        table = (self.partable if clusters == self.roles.clusters else
                 build_partable(self.parsed, replace(self.roles, clusters=clusters),
                                n_levels=self.n_levels))
        if table.n_levels > 1 and not clusters:
            raise DataError(f"the model has {table.n_levels} levels: name the cluster "
                            "variable(s) with cluster=..., highest level first")
        defined = {name for name, _ in define}
        variables = _analysis_variables(table)
        _check_in_data(self.parsed, variables, list(frame.columns) + sorted(defined))
        used = {v.casefold() for v in variables}
        ignored = {role: _unused(names, used)
                   for role, names in (("WITHIN", self.roles.within),
                                       ("BETWEEN", self.roles.between),
                                       ("CATEGORICAL", self.roles.categorical))}
        between_levels = {n: lv for n, lv in self.roles.between_levels.items()
                          if n.casefold() in used}
        given = {n.casefold() for n in self.roles.between}
        between = tuple(dict.fromkeys(
            [n for n in self.roles.between if n.casefold() in used]
            + [v for v in variables if 1 not in table.variable_levels.get(v, {1})
               and v.casefold() not in given]))
        roles = replace(self.roles, clusters=clusters, between=between,
                        between_levels=between_levels,
                        categorical=tuple(n for n in self.roles.categorical
                                          if n.casefold() in used),
                        within=tuple(v for v in variables
                                     if table.variable_levels.get(v) == frozenset({1})
                                     and table.n_levels > 1),
                        missing=dict(missing or {}), centering=dict(centering or {}),
                        define=tuple(tuple(d) for d in define),
                        usevariables=tuple(usevariables) if usevariables else None)
        data = prepare_data(frame, variables, roles)
        unused = "; ".join(f"{role} {', '.join(names)}" for role, names in ignored.items()
                           if names)
        if unused:
            data = replace(data, report="\n".join(filter(None, [
                data.report, f"not used in the model, so not analysed: {unused}"])))
        if data.categories:
            counts = {_match_name(v, table): len(c) for v, c in data.categories.items()}
            table = build_partable(self.parsed, roles, n_categories=counts,
                                   n_levels=self.n_levels)
        return Analysis(self, table, ModelSpec(table), data)


    def fit(self, frame: pd.DataFrame, *, estimator: str = "bayes",
            cluster: Sequence[str] | str | None = None,
            missing: Mapping[str, tuple] | None = None,
            centering: Mapping[str, str] | None = None,
            define: Sequence[tuple[str, str]] = (),
            usevariables: Sequence[str] | None = None, **options):
        """Fit the model to data. ``estimator="bayes"`` (the Gibbs sampler) takes the
        options of :class:`jaxsem.bayes.BayesOptions` (chains, biterations, fbiterations,
        thin, bseed, bconvergence, point, starts, progress, processors); ``estimator="ml"`` or
        ``"mlr"`` those of :class:`jaxsem.ml.MLOptions` (starts, random_starts, seed,
        max_iterations, tolerance, saturated)."""
        kind = estimator.lower()
        if kind not in ("bayes", "ml", "mlr"):
            raise ModelError(f"estimator {estimator!r} is not available: use 'bayes', 'ml' "
                             "or 'mlr'")
        if kind == "bayes":
            from jaxsem.bayes import BayesOptions as option_class  # noqa: PLC0415
        else:
            from jaxsem.ml import MLOptions as option_class  # noqa: PLC0415
        known = set(option_class.__dataclass_fields__) - {"estimator"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ModelError(f"unknown option(s) {', '.join(unknown)}; the {kind.upper()} "
                             f"options are {', '.join(sorted(known))}")
        analysis = self.prepare(frame, cluster=cluster, missing=missing, centering=centering,
                                define=define, usevariables=usevariables)
        if kind != "bayes":
            from jaxsem.ml import fit_ml  # noqa: PLC0415

            return fit_ml(analysis, option_class(estimator=kind, **options))
        from jaxsem.bayes import fit_bayes  # noqa: PLC0415

        return fit_bayes(analysis, option_class(**options))


@dataclass(frozen=True)
class Analysis:
    """A model checked against its data: ParTable, ModelSpec and Data together."""
    model: Model
    partable: ParTable
    spec: ModelSpec
    data: Data

    def summary(self) -> str:
        """The data summary and the parameter table, as text."""
        return (f"{self.data.summary()}\n\nModel: {self.model.dialect} syntax, "
                f"{self.partable.n_free} free parameters, {self.partable.n_levels} "
                f"level(s)\n{self.partable}")


def _analysis_variables(table: ParTable) -> list[str]:
    """Observed variables the model uses (outcomes, indicators, covariates), in order."""
    names = [v for b in table.blocks for v in b.observed + b.covariates]
    return list(dict.fromkeys(names))


def _unused(names: Sequence[str], used: set[str]) -> list[str]:
    """``names`` whose case-folded form is not in ``used``, each spelling once."""
    out: dict[str, str] = {}
    for name in names:
        if name.casefold() not in used:
            out.setdefault(name.casefold(), name)
    return list(out.values())


def _match_name(name: str, table: ParTable) -> str:
    return next((v for v in table.variable_levels if v.lower() == name.lower()), name)


def _check_in_data(parsed: ParsedModel, variables: list[str], columns: list[str]) -> None:
    """A model variable missing from the data is an error at its first use in the text."""
    lower = {str(c).lower() for c in columns}
    for v in variables:
        if v in columns or (parsed.dialect == "mplus" and v.lower() in lower):
            continue
        term = next(t for t in parsed.terms if v in (t.lhs, t.rhs))
        close = difflib.get_close_matches(v, [str(c) for c in columns], n=3)
        hint = (f"did you mean {', '.join(close)}?" if close else
                f"the data have: {', '.join(map(str, columns[:12]))}"
                + (" ..." if len(columns) > 12 else ""))
        loc = term.loc
        raise ModelSyntaxError(f"'{v}' is not a variable in the data (and not a factor: "
                               "factors are defined with =~ / BY)", parsed.text,
                               loc.line if loc else None, loc.col if loc else None, hint)


def _add_constraints(parsed: ParsedModel, text: str) -> None:
    section = parse_model_constraint(text)
    parsed.new_parameters.extend(section.new_parameters)
    parsed.definitions.extend(section.definitions)
    parsed.constraints.extend(section.constraints)
    defined = {d.name for d in section.definitions}
    for name, loc in section.new_parameters:
        if name not in defined:
            raise ModelSyntaxError(f"NEW parameter '{name}' is never defined", text,
                                   loc.line if loc else None, loc.col if loc else None,
                                   f"add '{name} = <expression>;' to MODEL CONSTRAINT")


def _add_priors(parsed: ParsedModel, priors: str | Mapping[str, str]) -> None:
    if isinstance(priors, str):
        parsed.priors.update(parse_model_priors(priors))
    else:
        for label, text in priors.items():
            parsed.priors[label.lower() if parsed.dialect == "mplus" else label] = (
                parse_prior(text, label=label), None)
