"""Default parameters, as small named rules.

Each rule reads the :class:`BlockInfo` of one level's model (which variables are
dependent, indicators, predictors, covariates, latent) and adds the parameters the user
did not write. Rules are listed in :data:`RULES` in the order they apply; a row made by
a rule carries ``origin="default:<rule name>"``. The user's own rows always win: a rule
never adds a parameter the user mentioned.

Where Mplus and lavaan differ, the dialect decides (documented per rule). The sources
are the Mplus User's Guide (chapter 17 "parameter default settings", chapter 9 examples,
outputs of ex9.2c and ex9.31 kept in tests/reference/mplus_ug/) and lavaan's parameter
tables for two-level models (bench/peers/outputs/lavaan_partables.json).
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field, replace
from itertools import combinations

from jaxsem.errors import ModelError, ModelSyntaxError
from jaxsem.data import Roles
from jaxsem.partable import Block, ParRow, ParTable, row_from_term, term_kind, unique
from jaxsem.syntax.statements import Modifier, ParsedModel, Term


# --------------------------------------------------------------------------- context

@dataclass
class BlockInfo:
    """What one level's model says about its variables (one block)."""
    name: str
    level: int
    terms: list[Term]
    observed: list[str] = field(default_factory=list)     # modelled observed parts
    latent: list[str] = field(default_factory=list)
    covariates: list[str] = field(default_factory=list)   # conditioned on, no parameters
    dependent: set[str] = field(default_factory=set)
    indicators: set[str] = field(default_factory=set)
    predictors: set[str] = field(default_factory=set)
    rows: dict[tuple, ParRow] = field(default_factory=dict)  # user rows by parameter key

    def modelled(self) -> list[str]:
        return self.observed + self.latent


@dataclass
class ModelContext:
    """The whole model after level resolution, before defaults."""
    dialect: str
    text: str
    roles: Roles
    infos: list[BlockInfo]
    factors: dict[str, str]                   # factor -> block where it is defined
    random_effects: dict[str, str]            # random coefficient -> block where it lives
    growth_factors: set[str]
    observed: list[str]
    variable_levels: dict[str, frozenset[int]]
    categorical: dict[str, int | None]
    whole_variable_covariates: set[str]       # random-slope predictors not on WITHIN
    crossed_blocks: dict[str, str] = field(default_factory=dict)  # see _crossed_blocks

    @classmethod
    def from_parsed(cls, parsed: ParsedModel, roles: Roles,
                    levels: dict[str, tuple[int, str]],
                    n_categories: dict[str, int]) -> "ModelContext":
        by_block: dict[str, list[Term]] = defaultdict(list)
        block_level = {name: num for num, name in levels.values()}
        for term in parsed.terms:
            num, name = levels[term.level]
            by_block[name].append(replace(term, level=name))
        mplus = parsed.dialect == "mplus"
        norm = (lambda s: s.lower()) if mplus else (lambda s: s)
        factors: dict[str, str] = {}
        random_effects: dict[str, str] = {}
        for name, terms in by_block.items():
            for t in terms:
                if t.op == "=~":
                    if factors.setdefault(t.lhs, name) != name:
                        raise _error(parsed.text, t, f"factor '{t.lhs}' is defined at "
                                     f"two levels ({factors[t.lhs]} and {name})",
                                     "give the within and between factors different "
                                     "names (fw, fb)")
                if t.random:
                    upper = _block_above(block_level, name, block_level[name], roles)
                    if upper is None:
                        raise _error(parsed.text, t, f"random coefficient '{t.random}' "
                                     f"varies across clusters, but the model has no level "
                                     f"above {name}",
                                     "name the cluster variable (clusters=[...], Mplus "
                                     "CLUSTER = ...), or define it one level lower")
                    random_effects[t.random] = upper
        latent = set(factors) | set(random_effects) | set(parsed.growth_factors)
        observed = list(unique(n for t in parsed.terms for n in _names(t)
                               if n not in latent))
        n_levels = max(block_level.values())
        crossed_blocks = _crossed_blocks(roles, norm)
        within = {norm(v) for v in roles.within}
        between = {norm(v) for v in roles.between}
        counts = {norm(k): v for k, v in n_categories.items()}
        categorical = {norm(k): counts.get(norm(k)) for k in roles.categorical
                       if norm(k) in observed}   # an unused CATEGORICAL is not analysed
        variable_levels = {}
        for v in observed:
            if mplus or n_levels == 1:
                variable_levels[v] = _mplus_levels(v, within, between, roles, n_levels)
            else:
                variable_levels[v] = frozenset(
                    block_level[b] for b, terms in by_block.items()
                    if any(v in _names(t) for t in terms))
        whole = set()
        for name, terms in by_block.items():
            for t in terms:
                if t.random and t.op == "~" and t.rhs not in latent:
                    lv = block_level[name]
                    if lv not in variable_levels[t.rhs]:
                        raise _error(parsed.text, t, f"random slope '{t.random}' has "
                                     f"predictor '{t.rhs}', which does not vary at the "
                                     f"{name} level (it is a BETWEEN variable)",
                                     "a random slope's predictor must vary within "
                                     "clusters: put it on the WITHIN list")
                    if variable_levels[t.rhs] != {lv}:
                        whole.add(t.rhs)
        ctx = cls(parsed.dialect, parsed.text, roles, [], factors, random_effects,
                  set(parsed.growth_factors), observed, variable_levels, categorical,
                  whole, {v: b for v, b in crossed_blocks.items() if v in variable_levels})
        ordered = sorted(((num, name) for num, name in levels.values()))
        for num, name in unique(ordered):
            ctx.infos.append(ctx._analyse_block(name, num, by_block.get(name, [])))
        return ctx

    def _analyse_block(self, name: str, level: int, terms: list[Term]) -> BlockInfo:
        info = BlockInfo(name, level, terms)
        latent_here = [f for f, b in self.factors.items() if b == name]
        latent_here += [r for r, b in self.random_effects.items() if b == name]
        latent_here += [g for g in self.growth_factors if g not in self.factors
                        and any(t.lhs == g for t in terms)]
        for t in terms:
            for n in _names(t):
                if n in self.factors and self.factors[n] != name:
                    raise _error(self.text, t, f"'{n}' is a factor of the "
                                 f"{self.factors[n]} level and cannot be used at the "
                                 f"{name} level")
                if n in self.random_effects and self.random_effects[n] != name and not (
                        t.random == n):
                    also = (" (a level-1 random slope that also varies over level-3 "
                            "clusters is not supported yet)" if level == 3 else "")
                    raise _error(self.text, t, f"random coefficient '{n}' lives at the "
                                 f"{self.random_effects[n]} level; it cannot be used at "
                                 f"the {name} level{also}")
                if n in self.variable_levels and not self.modelled_in(n, name, level):
                    raise _error(self.text, t, *_wrong_level_message(
                        n, name, level, self.variable_levels[n], self.crossed_blocks.get(n)))
            if t.op == "~":
                info.dependent.add(t.lhs)
                info.predictors.add(t.rhs)
            elif t.op == "=~":
                info.dependent.add(t.rhs)
                info.indicators.add(t.rhs)
        mentioned = {n for t in terms for n in _names(t)}
        explicit = {n for t in terms if t.op in ("~~", "~1", "|") for n in (t.lhs, t.rhs) if n}
        for v in self.observed:
            if not self.modelled_in(v, name, level):
                continue
            if self.dialect == "lavaan" and v not in mentioned:
                continue
            exogenous = v not in info.dependent
            if v in self.whole_variable_covariates:
                if v in mentioned:
                    info.covariates.append(v)
                continue
            single_level = self.dialect == "lavaan" or self.variable_levels[v] == {level}
            if exogenous and v in info.predictors and single_level and v not in explicit:
                info.covariates.append(v)
            elif self.dialect == "mplus" and exogenous and v not in mentioned and (
                    self.variable_levels[v] == {level}):
                continue  # a WITHIN/BETWEEN variable the model does not use here
            else:
                info.observed.append(v)
        info.latent = list(unique(latent_here))
        _collect_user_rows(self, info)
        return info

    def modelled_in(self, v: str, block: str, level: int) -> bool:
        """Whether observed variable ``v`` has a part in block ``block`` (at ``level``):
        the level is one of its levels, and in a cross-classified model a BETWEEN variable
        of one crossed factor (``between_levels``) is only in that factor's block."""
        if level not in self.variable_levels[v]:
            return False
        return self.crossed_blocks.get(v, block) == block

    def holds_location(self, v: str, info: BlockInfo, op: str) -> bool:
        """Whether block ``info`` carries the default intercept/mean (``op`` "~1") or
        thresholds (``op`` "|") of observed variable ``v``: the highest level where ``v``
        is modelled. In a cross-classified model ``v`` can be modelled in both crossed
        blocks of level 2; its mean is then one parameter, not one per block (a mean of a
        sum of two crossed parts is identified once), and it goes in the block where the
        user wrote one (``[y]`` / ``[u$1]``), else in the block of the first cluster
        variable (Mplus ``CLUSTER = level2b level2a``: level2b, where a three-level model
        has its top level; without cluster variables, the first crossed block in block
        order)."""
        if info.level != self.top_level(v):
            return False
        peers = [i for i in self.infos if i.level == info.level and v in i.observed]
        if len(peers) < 2:
            return True
        written = [i for i in peers if any(
            k[0] == v and k[1] == op and not r.origin.startswith("default:")
            for k, r in i.rows.items())]
        if written:
            return info is written[0]
        norm = (lambda s: s.lower()) if self.dialect == "mplus" else (lambda s: s)
        order = [norm(c) for c in self.roles.clusters]
        first = min(peers, key=lambda i: order.index(i.name) if i.name in order
                    else len(order))
        return info is first

    def blocks(self) -> tuple[Block, ...]:
        return tuple(Block(i.name, i.level, tuple(i.observed), tuple(i.latent),
                           tuple(i.covariates)) for i in self.infos)

    def top_level(self, v: str) -> int:
        """Highest level at which an observed variable is modelled; for a latent
        variable, the highest over its indicators (a second-order growth model's
        factors reach the level of their items)."""
        if v in self.variable_levels:
            return max(self.variable_levels[v])
        indicators = [t.rhs for i in self.infos for t in i.terms if t.op == "=~" and t.lhs == v]
        if not indicators:
            return next(i.level for i in self.infos if v in i.latent)
        return max(self.top_level(ind) for ind in indicators)


def _names(t: Term) -> list[str]:
    return [t.lhs] if t.op in ("~1", "|") else [t.lhs, t.rhs]


def _block_above(block_level: dict[str, int], name: str, level: int,
                 roles: Roles) -> str | None:
    if roles.crossed:
        raise ModelError("random coefficients in cross-classified models are not "
                         "supported yet")
    above = [b for b, lv in block_level.items() if lv == level + 1]
    return above[0] if above else None


def _mplus_levels(v: str, within: set[str], between: set[str], roles: Roles,
                  n_levels: int) -> frozenset[int]:
    """Mplus: WITHIN -> level 1 only; BETWEEN -> cluster levels (``between_levels``: its
    level; cross-classified: level 2, the block is in ``crossed_blocks``); others all
    levels."""
    if n_levels == 1:
        return frozenset({1})
    if v in within:
        return frozenset({1})
    if v in between:
        at = {k.lower(): lv for k, lv in roles.between_levels.items()}
        if v in at:
            return frozenset({2 if roles.crossed else at[v]})
        return frozenset(range(2, n_levels + 1))
    return frozenset(range(1, n_levels + 1))


def _crossed_blocks(roles: Roles, norm) -> dict[str, str]:
    """Cross-classified models: ``between_levels`` variable -> the block of its crossed
    factor. As in :mod:`jaxsem.data`, 2 names the factor at cluster position 0 (the last
    cluster variable) and 3 the one at position 1 (the first): Mplus ``CLUSTER = level2b
    level2a; BETWEEN = (level2a) w (level2b) z;`` gives w -> 2 -> level2a, z -> 3 ->
    level2b."""
    if not roles.crossed or not roles.between_levels:
        return {}
    if len(roles.clusters) != 2:
        raise ModelError("between_levels in a cross-classified model says which crossed "
                         "factor a variable belongs to (2: the last cluster variable, 3: "
                         "the first): name both cluster variables (clusters=[...], Mplus "
                         "CLUSTER = ...)")
    first, last = (norm(c) for c in roles.clusters)
    out = {}
    for v, level in roles.between_levels.items():
        if level not in (2, 3) or isinstance(level, bool):
            raise ModelError(f"the BETWEEN level of '{v}' must be 2 or 3, not {level!r} "
                             "(in a cross-classified model: 2 for the last cluster "
                             "variable, 3 for the first)")
        out[norm(v)] = last if level == 2 else first
    return out


def _wrong_level_message(v: str, block: str, level: int, levels: frozenset[int],
                         crossed_block: str | None = None) -> tuple[str, str]:
    if crossed_block is not None and level in levels:
        return (f"'{v}' is a BETWEEN variable of the {crossed_block} clusters (constant "
                f"within them) but is used at the {block} level",
                f"move the statement to %BETWEEN {crossed_block}%, or put '{v}' on BETWEEN "
                f"for {block} (Mplus BETWEEN = ({block}) {v}; between_levels)")
    if levels == {1}:
        return (f"'{v}' is a WITHIN variable (it has no between-level part) but is used "
                f"at the {block} level",
                f"remove '{v}' from WITHIN to model its between part, or use its "
                "cluster mean as a BETWEEN variable")
    if 1 not in levels and level == 1:
        return (f"'{v}' is a BETWEEN variable (constant within clusters) but is used at "
                "the within level",
                f"move the statement to %BETWEEN%, or remove '{v}' from BETWEEN")
    return (f"'{v}' is not modelled at the {block} level",
            "check the WITHIN/BETWEEN lists and the level of this statement")


def _error(text: str, t: Term, message: str, hint: str | None = None) -> ModelSyntaxError:
    loc = t.loc
    return ModelSyntaxError(message, text, loc.line if loc else None,
                            loc.col if loc else None, hint)


def key_of(lhs: str, op: str, rhs: str) -> tuple:
    """Parameter identity: covariances are unordered."""
    if op == "~~":
        a, b = sorted((lhs, rhs))
        return (a, op, b)
    return (lhs, op, rhs)


def _merge(old: Term, new: Term, text: str) -> Term:
    """Later mentions of a parameter refine earlier ones (Mplus semantics)."""
    m0, m1 = old.mod, new.mod
    if m0.label and m1.label and m0.label != m1.label:
        raise _error(text, new, f"{new.lhs} {new.op} {new.rhs} gets two labels "
                     f"('{m0.label}' and '{m1.label}')", "give each parameter one label")
    if old.random or new.random:
        if old.random != new.random or new.mod != Modifier():
            raise _error(text, new, f"{new.lhs} {new.op} {new.rhs} is a random "
                         f"coefficient ('{old.random or new.random}') and cannot also be "
                         "fixed, labelled or given a start value")
    fixed = m1.fixed if m1.fixed is not None else (None if m1.free else m0.fixed)
    mod = Modifier(fixed=fixed,
                   start=m1.start if m1.start is not None else m0.start,
                   free=m1.free or (m0.free and m1.fixed is None),
                   label=m1.label or m0.label, prior=m1.prior or m0.prior)
    return replace(old, mod=mod, random=old.random or new.random)


def _collect_user_rows(ctx: ModelContext, info: BlockInfo) -> None:
    merged: dict[tuple, Term] = {}
    for t in info.terms:
        if t.op == "~~" and t.lhs != t.rhs and t.random:
            raise _error(ctx.text, t, "a random residual variance is written 'logv | y'")
        k = key_of(t.lhs, t.op, t.rhs)
        merged[k] = _merge(merged[k], t, ctx.text) if k in merged else t
    for k, t in merged.items():
        if t.op in ("~~",) and t.lhs == t.rhs and t.mod.fixed is not None and t.mod.fixed < 0:
            raise _error(ctx.text, t, f"the variance of '{t.lhs}' is fixed at a negative "
                         f"value ({t.mod.fixed:g})", "fix it at 0 or a positive value")
        if t.op == "|" and t.lhs not in ctx.categorical:
            raise _error(ctx.text, t, f"'{t.lhs}' has a threshold but is not categorical",
                         f"declare it CATEGORICAL (categorical=['{t.lhs}'])")
        dependent = t.lhs in info.dependent and not (t.op == "~~" and t.rhs not in info.dependent)
        info.rows[k] = row_from_term(t, info.name, info.level, term_kind(t, dependent))


# --------------------------------------------------------------------------- rules

def first_loading_fixed(ctx: ModelContext, info: BlockInfo) -> None:
    """Both dialects: the first loading of each factor is fixed at 1 unless the user
    freed it (Mplus ``f BY y1*``, lavaan ``NA*y1``), fixed it, or made it random."""
    firsts: dict[str, Term] = {}
    for t in info.terms:
        if t.op == "=~" and t.lhs not in firsts and t.origin != "growth":
            firsts[t.lhs] = t
    for f, t in firsts.items():
        k = key_of(t.lhs, t.op, t.rhs)
        row = info.rows[k]
        if row.random or row.free == 0 or _explicitly_free(info, k):
            continue
        info.rows[k] = replace(row, free=0, value=1.0, origin="default:first_loading_fixed")


def _explicitly_free(info: BlockInfo, k: tuple) -> bool:
    mods = [t.mod for t in info.terms if key_of(t.lhs, t.op, t.rhs) == k]
    return any(m.free for m in mods)


def variances(ctx: ModelContext, info: BlockInfo) -> None:
    """Both dialects: (residual) variances of modelled continuous variables and of latent
    variables are free; the residual variance of a categorical variable's latent response
    is fixed at 1 at its lowest level (within; between for a between-only variable:
    probit, as Mplus)."""
    for v in info.modelled():
        k = key_of(v, "~~", v)
        if k in info.rows:
            continue
        kind = "residual_variance" if v in info.dependent else "variance"
        if v in ctx.categorical and info.level == min(ctx.variable_levels.get(v, {1})):
            info.rows[k] = ParRow(v, "~~", v, info.name, info.level, kind, free=0,
                                  value=1.0, origin="default:categorical_residual_variance")
        else:
            info.rows[k] = ParRow(v, "~~", v, info.name, info.level, kind, free=-1,
                                  origin="default:variances")


def intercepts(ctx: ModelContext, info: BlockInfo) -> None:
    """Both dialects: intercepts/means of modelled observed variables are free at the
    highest level where the variable is modelled (zero below: the between part carries
    the mean; cross-classified: in one of the two crossed blocks, see
    :meth:`ModelContext.holds_location`); categorical variables get thresholds instead; indicators of growth
    factors have intercepts fixed at 0. Factor means are 0; means of random
    coefficients are free; growth factor means are free at the top level of their
    indicators."""
    growth_indicators = {t.rhs for i in ctx.infos for t in i.terms if t.origin == "growth"}
    for v in info.observed:
        k = (v, "~1", "")
        if k in info.rows or v in ctx.categorical or v in growth_indicators:
            continue
        if ctx.holds_location(v, info, "~1"):
            kind = "intercept" if v in info.dependent else "mean"
            info.rows[k] = ParRow(v, "~1", "", info.name, info.level, kind, free=-1,
                                  origin="default:intercepts")
    for v in info.latent:
        k = (v, "~1", "")
        if k in info.rows:
            continue
        kind = "intercept" if v in info.dependent else "mean"
        if v in ctx.random_effects:
            info.rows[k] = ParRow(v, "~1", "", info.name, info.level, kind, free=-1,
                                  origin="default:random_coefficient_means")
        elif v in ctx.growth_factors:
            if info.level == ctx.top_level(v):
                info.rows[k] = ParRow(v, "~1", "", info.name, info.level, kind, free=-1,
                                      origin="default:growth_factor_means")


def thresholds(ctx: ModelContext, info: BlockInfo) -> None:
    """Both dialects: a categorical variable with K categories has K-1 free thresholds at
    the highest level where it is modelled (Mplus puts them on the between level of a
    two-level model; cross-classified: in one crossed block, as intercepts)."""
    for v in info.observed:
        if v not in ctx.categorical or not ctx.holds_location(v, info, "|"):
            continue
        n_cat = ctx.categorical[v]
        if n_cat is None:
            continue  # known once data are attached
        for j in range(1, n_cat):
            k = (v, "|", f"t{j}")
            if k not in info.rows:
                info.rows[k] = ParRow(v, "|", f"t{j}", info.name, info.level, "threshold",
                                      free=-1, origin="default:thresholds")


def exogenous_latent_covariances(ctx: ModelContext, info: BlockInfo) -> None:
    """Both dialects: latent variables that are not regressed on anything covary freely
    (Mplus; lavaan auto.cov.lv.x), unless one has its variance fixed at 0 (Mplus then
    fixes all its covariances at 0)."""
    exo = [v for v in info.latent if v not in info.dependent]
    _free_pairs(info, exo, "covariance", "exogenous_latent_covariances")


def growth_factor_covariances(ctx: ModelContext, info: BlockInfo) -> None:
    """Both dialects (Mplus growth shorthand): growth factors of one level covary freely,
    also when they are regressed on covariates (their residual covariances)."""
    growth = [v for v in info.latent if v in ctx.growth_factors]
    _free_pairs(info, growth, "covariance", "growth_factor_covariances")


def final_outcome_covariances(ctx: ModelContext, info: BlockInfo) -> None:
    """Both dialects: residual covariances among observed outcomes that are neither
    factor indicators nor predictors of other variables are free (Mplus; lavaan
    auto.cov.y, checked against lavaan's two_outcomes table)."""
    finals = [v for v in info.observed if v in info.dependent and v not in info.indicators
              and v not in info.predictors]
    _free_pairs(info, finals, "residual_covariance", "final_outcome_covariances")


def exogenous_observed_covariances(ctx: ModelContext, info: BlockInfo) -> None:
    """Mplus only: parts of within-varying observed variables that are not regressed on
    anything at this level (for example the between part of an outcome the between model
    does not mention, or a latent-decomposed covariate) are modelled with free
    covariances among themselves, like the observed covariates they stand for. lavaan
    conditions on such covariates instead (fixed.x)."""
    if ctx.dialect != "mplus":
        return
    exo = [v for v in info.observed if v not in info.dependent]
    _free_pairs(info, exo, "covariance", "exogenous_observed_covariances")


def _free_pairs(info: BlockInfo, names: list[str], kind: str, rule: str) -> None:
    for a, b in combinations(names, 2):
        if any(_fixed_zero_variance(info, v) for v in (a, b)):
            continue
        k = key_of(a, "~~", b)
        if k not in info.rows:
            dependent = a in info.dependent or b in info.dependent
            info.rows[k] = ParRow(a, "~~", b, info.name, info.level,
                                  "residual_covariance" if dependent else kind, free=-1,
                                  origin=f"default:{rule}")


def _fixed_zero_variance(info: BlockInfo, v: str) -> bool:
    row = info.rows.get((v, "~~", v))
    return row is not None and row.free == 0 and not row.random and row.value == 0.0


RULES = (first_loading_fixed, variances, intercepts, thresholds,
         exogenous_latent_covariances, growth_factor_covariances, final_outcome_covariances,
         exogenous_observed_covariances)


def apply_rules(ctx: ModelContext) -> list[ParRow]:
    """Run every rule on every block; rows in block order, user rows first."""
    rows: list[ParRow] = []
    for info in ctx.infos:
        for rule in RULES:
            rule(ctx, info)
        rows.extend(info.rows.values())
    return rows


# --------------------------------------------------------------------------- checks

def check_identification(table: ParTable) -> None:
    """Structural identification checks that need no data (ModelError when one fails).

    - every factor has its scale set: a fixed loading or a fixed variance;
    - a factor with a single indicator cannot have a free variance and a free residual
      variance of that indicator at once.
    """
    for block in table.blocks:
        rows = [r for r in table.rows if r.block == block.name]
        for f in block.latent:
            loadings = [r for r in rows if r.op == "=~" and r.lhs == f]
            if not loadings:
                continue
            var = next((r for r in rows if r.op == "~~" and r.lhs == f == r.rhs), None)
            scale_fixed = any(r.free == 0 and not r.random for r in loadings) or (
                var is not None and var.free == 0) or any(r.random for r in loadings)
            if not scale_fixed:
                raise ModelError(
                    f"the scale of factor '{f}' ({block.name} level) is not set: all its "
                    "loadings and its variance are free. Fix one loading (Mplus "
                    f"'{f} BY {loadings[0].rhs}@1', lavaan '1*{loadings[0].rhs}') or its "
                    f"variance ('{f}@1', '{f} ~~ 1*{f}')")
            if len(loadings) == 1 and var is not None and var.free:
                y = loadings[0].rhs
                resid = next((r for r in rows if r.op == "~~" and r.lhs == y == r.rhs), None)
                if resid is not None and resid.free and not resid.random:
                    raise ModelError(
                        f"factor '{f}' ({block.name} level) has a single indicator '{y}' "
                        f"and both its variance and the residual variance of '{y}' are "
                        f"free: the model is not identified. Fix the residual variance "
                        f"('{y}@0') or the factor variance")

