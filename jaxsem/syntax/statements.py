"""What a model text says, before defaults: the common output of both dialect parsers.

Both parsers (``lavaan.py``, ``mplus.py``) turn text into a :class:`ParsedModel`: one
:class:`Term` per parameter the user mentioned, with its modifiers and source position.
``jaxsem.partable.build_partable`` then applies the default rules of the dialect and
returns the ParTable. Nothing in this module knows about data or estimation.

Operators (lavaan spelling is canonical):

====== ============================== ==========================================
op     lhs / rhs                      Mplus spelling
====== ============================== ==========================================
``=~`` factor / indicator             ``f BY y``
``~``  outcome / predictor            ``y ON x``
``~~`` variable / variable            ``y WITH x``; ``y`` alone is ``y ~~ y``
``~1`` variable / ""                  ``[y]``
``|``  variable / "t1", "t2", ...     ``[u$1]``
====== ============================== ==========================================

Levels are named as written: ``"within"``, ``"between"`` (the one level above within in
a two-level model), or a cluster-variable name (``%BETWEEN school%``), or
``"level3"`` from lavaan's ``level: 3``. The ParTable builder resolves names to numbers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SourceLoc:
    """1-based line and column in the model text."""
    line: int
    col: int


@dataclass(frozen=True)
class Modifier:
    """What the user attached to one parameter.

    ``fixed``: value after ``@`` (Mplus) or a numeric ``0.5*`` (lavaan).
    ``start``: value after ``*`` (Mplus) or ``start(v)*`` (lavaan).
    ``free``: explicitly freed (``NA*`` in lavaan; ``*`` in Mplus, which also frees a
    first loading). ``label``: equality label. ``prior``: a ``jaxsem.priors.Prior``.
    """
    fixed: float | None = None
    start: float | None = None
    free: bool = False
    label: str | None = None
    prior: Any = None


@dataclass(frozen=True)
class Term:
    """One parameter the user mentioned.

    ``random``: the name of the random coefficient that replaces this parameter
    (``s | y ON x`` gives ``Term("y", "~", "x", random="s")``; ``s | f BY y`` gives
    ``Term("f", "=~", "y", random="s")``; ``logv | y`` gives
    ``Term("y", "~~", "y", random="logv")``). A random term has no value of its own:
    its random coefficient is a latent variable of the next level up.
    ``origin``: "user", or the shorthand that produced it ("growth").
    """
    lhs: str
    op: str
    rhs: str
    level: str
    mod: Modifier = Modifier()
    loc: SourceLoc | None = None
    random: str | None = None
    origin: str = "user"


@dataclass(frozen=True)
class Definition:
    """A derived parameter: lavaan ``name := expr`` or Mplus ``NEW(name); name = expr``.

    ``expr`` is a ``jaxsem.syntax.expressions.Expr``.
    """
    name: str
    expr: Any
    loc: SourceLoc | None = None


@dataclass(frozen=True)
class Constraint:
    """``lhs op rhs`` with op one of ``==``, ``<``, ``>`` over parameter labels.

    ``lhs`` and ``rhs`` are ``Expr`` objects.
    """
    lhs: Any
    op: str
    rhs: Any
    loc: SourceLoc | None = None


@dataclass
class ParsedModel:
    """Everything a model text says, in source order.

    ``priors``: label -> (Prior, SourceLoc) from MODEL PRIORS (Mplus) or the API.
    ``growth_factors``: names of latent variables defined by growth shorthand; the
    builder fixes their indicators' intercepts at zero and frees their means.
    ``levels``: level names in order of first appearance.
    """
    dialect: str
    text: str
    terms: list[Term] = field(default_factory=list)
    definitions: list[Definition] = field(default_factory=list)
    constraints: list[Constraint] = field(default_factory=list)
    priors: dict[str, tuple[Any, SourceLoc | None]] = field(default_factory=dict)
    new_parameters: list[tuple[str, SourceLoc | None]] = field(default_factory=list)
    growth_factors: set[str] = field(default_factory=set)
    levels: list[str] = field(default_factory=list)
