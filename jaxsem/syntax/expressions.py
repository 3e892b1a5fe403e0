"""Arithmetic expressions over parameter labels, and the Mplus MODEL CONSTRAINT section.

User text is never passed to ``eval``/``exec``: a LALR grammar (lark) reads it into a
small tree of frozen dataclasses (:class:`Number`, :class:`Name`, :class:`Unary`,
:class:`Binary`, :class:`Call`) that :func:`evaluate` walks with numpy or jax.numpy.

Expression grammar, loosest binding first::

    a + b   a - b          left-associative
    a * b   a / b          left-associative
    -a   +a                unary sign
    a ** b  (also a ^ b)   right-associative, binds tighter than unary minus:
                           -2**2 == -4, 2**-1 == 0.5, 2**3**2 == 512
    f(a)                   f in ALLOWED_FUNCTIONS (case-insensitive)

Numbers: ``1``, ``1.5``, ``.5``, ``1.``, ``1e-3``. Names (labels): a letter or ``_``
then letters, digits, ``_`` or ``.``.
"""
from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, Collection, Mapping, Sequence

import numpy
from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from jaxsem.errors import ModelError, ModelSyntaxError, source_location
from jaxsem.syntax.statements import Constraint, Definition, SourceLoc

#: Function name in model text -> numpy / jax.numpy attribute that computes it.
ALLOWED_FUNCTIONS: Mapping[str, str] = {
    "exp": "exp", "log": "log", "log10": "log10", "sqrt": "sqrt", "abs": "abs",
    "sin": "sin", "cos": "cos", "tan": "tan",
    "asin": "arcsin", "acos": "arccos", "atan": "arctan",
}


# ----------------------------------------------------------------------------- trees

class Expr(ABC):
    """Base of expression nodes."""

    @abstractmethod
    def names(self) -> set[str]:
        """The parameter labels this expression uses."""


@dataclass(frozen=True)
class Number(Expr):
    value: float

    def names(self) -> set[str]:
        return set()


@dataclass(frozen=True)
class Name(Expr):
    name: str

    def names(self) -> set[str]:
        return {self.name}


@dataclass(frozen=True)
class Unary(Expr):
    """``-operand`` (the only unary operator kept; unary plus is dropped)."""
    op: str
    operand: Expr

    def names(self) -> set[str]:
        return self.operand.names()


@dataclass(frozen=True)
class Binary(Expr):
    """``left op right`` with op one of ``+ - * / **``."""
    op: str
    left: Expr
    right: Expr

    def names(self) -> set[str]:
        return self.left.names() | self.right.names()


@dataclass(frozen=True)
class Call(Expr):
    """``function(argument)`` with function a key of :data:`ALLOWED_FUNCTIONS`."""
    function: str
    argument: Expr

    def names(self) -> set[str]:
        return self.argument.names()


# ----------------------------------------------------------------------------- parsing

_GRAMMAR = r"""
?start: sum
?sum: product
    | sum "+" product   -> add
    | sum "-" product   -> sub
?product: unary
    | product "*" unary -> mul
    | product "/" unary -> div
?unary: power
    | "-" unary         -> neg
    | "+" unary
?power: atom
    | atom POW unary    -> pow
?atom: NUMBER           -> number
    | NAME              -> name
    | NAME "(" sum ")"  -> call
    | "(" sum ")"
POW: "**" | "^"
NUMBER: /(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?/
NAME: /[A-Za-z_][A-Za-z0-9_.]*/
%import common.WS
%ignore WS
"""

_PARSER = Lark(_GRAMMAR, parser="lalr", maybe_placeholders=False)

_BINARY_RULES = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**"}

_TERMINAL_WORDS = {
    "NUMBER": "a number", "NAME": "a parameter label", "LPAR": "'('", "RPAR": "')'",
    "PLUS": "'+'", "MINUS": "'-'", "STAR": "'*'", "SLASH": "'/'", "POW": "'**'",
    "$END": "the end of the expression",
}


def _expected_hint(terminals: Collection[str]) -> str | None:
    words = sorted({_TERMINAL_WORDS.get(t, repr(t)) for t in terminals})
    return f"expected one of: {', '.join(words)}" if words else None


def parse_expression(text: str, *, full_text: str | None = None, offset: int = 0,
                     case_insensitive: bool = True) -> Expr:
    """Parse ``text`` into an :class:`Expr`.

    ``full_text``/``offset``: when ``text`` is a piece of a larger model text starting at
    character ``offset`` of ``full_text``, error positions are given in ``full_text``.
    ``case_insensitive``: store labels lower-cased (Mplus); otherwise as written (lavaan).
    Function names are always case-insensitive. Raises :class:`ModelSyntaxError`.
    """
    full = text if full_text is None else full_text

    def fail(message: str, pos: int, hint: str | None = None) -> ModelSyntaxError:
        line, col = source_location(full, offset + pos)
        return ModelSyntaxError(message, full, line, col, hint)

    if not text.strip():
        raise fail("empty expression", len(text), "write a number, a label or a formula")
    try:
        tree = _PARSER.parse(text)
    except UnexpectedCharacters as exc:
        raise fail(f"unexpected character {text[exc.pos_in_stream]!r} in expression",
                   exc.pos_in_stream, _expected_hint(exc.allowed)) from None
    except UnexpectedToken as exc:
        accepted = exc.accepts or exc.expected
        expected = _expected_hint(accepted)
        if exc.token.type == "$END":
            if "RPAR" in accepted:
                expected = "a '(' is not closed: add ')'"
            raise fail("the expression ends too early", len(text.rstrip()), expected) from None
        raise fail(f"unexpected {exc.token.value!r} in expression", exc.token.start_pos,
                   expected) from None
    except UnexpectedInput as exc:  # any other lark input error: still located
        raise fail("cannot read the expression", getattr(exc, "pos_in_stream", 0) or 0) from None

    def build(node: Tree | Token) -> Expr:
        if isinstance(node, Token):  # a bare NUMBER or NAME inlined by '?atom'
            return build(Tree("number" if node.type == "NUMBER" else "name", [node]))
        rule, children = node.data, node.children
        if rule == "number":
            return Number(float(children[0]))
        if rule == "name":
            label = str(children[0])
            return Name(label.lower() if case_insensitive else label)
        if rule == "neg":
            return Unary("-", build(children[0]))
        if rule == "call":
            func_token = children[0]
            function = str(func_token).lower()
            if function not in ALLOWED_FUNCTIONS:
                raise fail(f"unknown function '{func_token}'", func_token.start_pos,
                           f"allowed functions: {', '.join(ALLOWED_FUNCTIONS)}")
            return Call(function, build(children[1]))
        if rule in _BINARY_RULES:
            return Binary(_BINARY_RULES[rule], build(children[0]), build(children[-1]))
        raise AssertionError(f"grammar rule {rule!r} has no tree node")

    return build(tree)


# ----------------------------------------------------------------------------- evaluation

def evaluate(expr: Expr, env: Mapping[str, object], xp=numpy):
    """Value of ``expr`` with labels looked up in ``env``.

    ``xp``: ``numpy`` or ``jax.numpy``; with ``jax.numpy`` the result is traceable
    (jit, grad, vmap). Values in ``env`` broadcast, so arrays of any common shape work.
    """
    if isinstance(expr, Number):
        return xp.asarray(expr.value)
    if isinstance(expr, Name):
        if expr.name not in env:
            raise ModelError(f"the expression uses '{expr.name}', which is not a parameter "
                             "label of the model")
        return env[expr.name]
    if isinstance(expr, Unary):
        return -evaluate(expr.operand, env, xp)
    if isinstance(expr, Call):
        return getattr(xp, ALLOWED_FUNCTIONS[expr.function])(evaluate(expr.argument, env, xp))
    if isinstance(expr, Binary):
        left, right = evaluate(expr.left, env, xp), evaluate(expr.right, env, xp)
        if expr.op == "+":
            return left + right
        if expr.op == "-":
            return left - right
        if expr.op == "*":
            return left * right
        if expr.op == "/":
            return left / right
        return xp.power(left, right)
    raise TypeError(f"not an expression node: {expr!r}")


def compile_expression(expr: Expr, names: Sequence[str]) -> Callable:
    """A JAX-traceable function ``theta -> value`` for ``expr``.

    ``theta``: array of shape ``(len(names),)``, ``theta[i]`` the value of ``names[i]``;
    returns a scalar array. Raises :class:`ModelError` when ``expr`` uses a label not in
    ``names``.
    """
    import jax.numpy as jnp  # noqa: PLC0415 (keep parsing importable without JAX start-up)

    position = {name: i for i, name in enumerate(names)}
    missing = sorted(expr.names() - position.keys())
    if missing:
        raise ModelError(f"the expression {to_text(expr)} uses {', '.join(map(repr, missing))}"
                         ", which is not a parameter label of the model")

    def value(theta):
        env = {name: theta[i] for name, i in position.items()}
        return jnp.asarray(evaluate(expr, env, jnp))

    return value


# ----------------------------------------------------------------------------- printing

_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "unary": 3, "**": 4, "atom": 5}


def _precedence(expr: Expr) -> int:
    if isinstance(expr, Binary):
        return _PRECEDENCE[expr.op]
    if isinstance(expr, Unary) or (isinstance(expr, Number) and expr.value < 0):
        return _PRECEDENCE["unary"]
    return _PRECEDENCE["atom"]


def format_number(value: float) -> str:
    """Shortest text that reads back as exactly ``value``: ``2.0`` -> ``"2"``,
    ``1e10`` -> ``"1e+10"``, ``0.1`` -> ``"0.1"``."""
    for digits in range(6, 18):
        text = f"{value:.{digits}g}"
        if float(text) == value:
            return text
    return repr(value)


def to_text(expr: Expr) -> str:
    """Model text for ``expr`` with only the parentheses it needs; parses back equal."""
    if isinstance(expr, Number):
        return format_number(expr.value)
    if isinstance(expr, Name):
        return expr.name
    if isinstance(expr, Call):
        return f"{expr.function}({to_text(expr.argument)})"
    if isinstance(expr, Unary):
        operand = to_text(expr.operand)
        if _precedence(expr.operand) <= _PRECEDENCE["unary"]:
            operand = f"({operand})"
        return f"-{operand}"
    if isinstance(expr, Binary):
        own = _PRECEDENCE[expr.op]
        left, right = to_text(expr.left), to_text(expr.right)
        if expr.op == "**":  # right-associative; a unary right operand needs no parentheses
            left_needs, right_needs = (_precedence(expr.left) <= own,
                                       _precedence(expr.right) < _PRECEDENCE["unary"])
        else:
            left_needs, right_needs = (_precedence(expr.left) < own,
                                       _precedence(expr.right) <= own)
        left = f"({left})" if left_needs else left
        right = f"({right})" if right_needs else right
        return f"{left} {expr.op} {right}" if own <= 1 else f"{left}{expr.op}{right}"
    raise TypeError(f"not an expression node: {expr!r}")


# ----------------------------------------------------------------------------- statements

_LABEL = r"[A-Za-z_][A-Za-z0-9_.]*"
_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"


@dataclass(frozen=True)
class Statement:
    """One ``;``-terminated statement: its text (comments blanked) and where it starts.

    ``offset``: position of ``text[0]`` in the full model text (first non-blank character).
    """
    text: str
    offset: int


def split_statements(text: str, *, full_text: str | None = None, offset: int = 0,
                     section: str = "the section") -> list[Statement]:
    """Split Mplus section text into statements: ``!`` comments out, ``;`` ends each.

    Comment characters are replaced by blanks, so positions stay those of ``full_text``.
    A non-blank piece after the last ``;`` is a :class:`ModelSyntaxError`.
    """
    full = text if full_text is None else full_text
    blanked = re.sub(r"!.*", lambda m: " " * len(m.group()), text)
    statements, start = [], 0
    for piece in blanked.split(";"):
        stripped = piece.lstrip()
        begin = start + len(piece) - len(stripped)
        if stripped.strip():
            statements.append(Statement(stripped.rstrip(), offset + begin))
        start += len(piece) + 1
    if not blanked.rstrip().endswith(";") and statements:
        last = statements[-1]
        line, col = source_location(full, last.offset + len(last.text))
        raise ModelSyntaxError(f"missing ';' at the end of this statement in {section}",
                               full, line, col, "end every statement with ';'")
    return statements


def expand_label_range(first: str, last: str) -> list[str] | None:
    """``"d1", "d3"`` -> ``["d1", "d2", "d3"]``; ``None`` if not a valid ascending range.

    Both ends need the same prefix (case-insensitive) and a numeric suffix; ``a01-a03``
    keeps the zero padding. Returned names have the spelling of ``first``'s prefix.
    """
    head = re.fullmatch(r"(.*?)(\d+)", first)
    tail = re.fullmatch(r"(.*?)(\d+)", last)
    if not head or not tail or head.group(1).lower() != tail.group(1).lower() or not head.group(1):
        return None
    lo, hi = int(head.group(2)), int(tail.group(2))
    if lo > hi:
        return None
    width = len(head.group(2)) if len(head.group(2)) == len(tail.group(2)) else 0
    return [f"{head.group(1)}{i:0{width}d}" for i in range(lo, hi + 1)]


@dataclass
class ConstraintSection:
    """What MODEL CONSTRAINT says.

    ``new_parameters``: NEW names (lower case) in declaration order, with where each is
    declared; ``starts``: NEW name -> start value from ``NEW(name*value)``;
    ``definitions``: ``name = expr`` for NEW names, in source order (a definition may use
    a NEW parameter defined further down; there are no cycles);
    ``constraints``: comparisons, in source order.
    """
    new_parameters: list[tuple[str, SourceLoc]] = field(default_factory=list)
    starts: dict[str, float] = field(default_factory=dict)
    definitions: list[Definition] = field(default_factory=list)
    constraints: list[Constraint] = field(default_factory=list)


_NEW_ITEM = re.compile(
    rf"\s*(?P<first>{_LABEL})(?:\s*-\s*(?P<last>{_LABEL}))?(?:\s*\*\s*(?P<start>{_NUMBER}))?\s*,?")
_COMPARISON = re.compile(r"==|<=|>=|=|<|>")
_UNSUPPORTED_STATEMENTS = ("do", "loop", "plot")


def parse_model_constraint(text: str, *, full_text: str | None = None, offset: int = 0,
                           model_labels: Collection[str] | None = None) -> ConstraintSection:
    """Parse the body of an Mplus ``MODEL CONSTRAINT:`` section (case-insensitive).

    Statements (each ends with ``;``, ``!`` comments to end of line):

    * ``NEW(a b*0.5 d1-d3);`` declares new parameters (``*`` gives a start value,
      ``d1-d3`` expands to ``d1 d2 d3``). NEW may appear anywhere in the section.
    * ``name = expr;`` with ``name`` declared NEW defines it (a :class:`Definition`).
    * ``name = expr;`` with ``name`` not NEW is Mplus's equality constraint on a model
      label: ``Constraint(Name(name), "==", expr)``. Likewise ``expr = expr;`` with any
      other left side (``0 = a - b;``).
    * ``expr == expr;``, ``expr < expr;``, ``expr > expr;`` are constraints.

    ``model_labels``: when given, every label used must be a NEW name or one of these,
    and ``name = expr`` with an unknown ``name`` asks for ``NEW(name);``.
    Raises :class:`ModelSyntaxError` (line, column, caret) for anything else, including
    a definition that refers to itself through other definitions.
    """
    full = text if full_text is None else full_text
    known = None if model_labels is None else {label.lower() for label in model_labels}

    def fail(message: str, pos: int, hint: str | None = None) -> ModelSyntaxError:
        line, col = source_location(full, pos)
        return ModelSyntaxError(message, full, line, col, hint)

    def loc(pos: int) -> SourceLoc:
        return SourceLoc(*source_location(full, pos))

    section = ConstraintSection()
    statements = split_statements(text, full_text=full, offset=offset,
                                  section="MODEL CONSTRAINT")
    new_declared: dict[str, int] = {}
    rest = []
    for st in statements:
        keyword = re.match(r"([A-Za-z]+)\s*\(", st.text)
        word = keyword.group(1).lower() if keyword else None
        if word == "new":
            _parse_new(st, keyword.end(), section, new_declared, fail, loc)
        elif word in _UNSUPPORTED_STATEMENTS:
            raise fail(f"{keyword.group(1).upper()} statements in MODEL CONSTRAINT are not "
                       "supported yet", st.offset, "write each constraint out in full")
        else:
            rest.append(st)

    defined: dict[str, int] = {}
    for st in rest:
        ops = list(_COMPARISON.finditer(st.text))
        if not ops:
            raise fail("expected 'name = expression' or a comparison (==, <, >)",
                       st.offset, "e.g. NEW(ind); ind = a*b;  or  a > 0;")
        if len(ops) > 1:
            raise fail("only one comparison per statement", st.offset + ops[1].start(),
                       "split it into two statements")
        op_match = ops[0]
        op = op_match.group()
        if op in ("<=", ">="):
            raise fail(f"'{op}' is not an operator of MODEL CONSTRAINT",
                       st.offset + op_match.start(), "use < or >")
        left_text, right_text = st.text[:op_match.start()], st.text[op_match.end():]
        if not left_text.strip():
            raise fail(f"'{op}' needs a left-hand side", st.offset)
        lhs = parse_expression(left_text, full_text=full, offset=st.offset)
        rhs = parse_expression(right_text, full_text=full, offset=st.offset + op_match.end())
        for expr, piece_offset, piece in ((lhs, st.offset, left_text),
                                          (rhs, st.offset + op_match.end(), right_text)):
            _check_labels(expr, piece, piece_offset, new_declared, known, fail)
        if op == "=" and isinstance(lhs, Name) and lhs.name in new_declared:
            if lhs.name in defined:
                first = source_location(full, defined[lhs.name])
                raise fail(f"'{lhs.name}' is defined twice (first on line {first[0]})", st.offset,
                           "keep one definition")
            defined[lhs.name] = st.offset
            section.definitions.append(Definition(lhs.name, rhs, loc(st.offset)))
        else:
            section.constraints.append(
                Constraint(lhs, "==" if op == "=" else op, rhs, loc(st.offset + op_match.start())))
    _check_acyclic(section.definitions, defined, fail)
    return section


def _parse_new(st: Statement, body_start: int, section: ConstraintSection,
               new_declared: dict[str, int], fail, loc) -> None:
    """Read ``NEW(...)`` into ``section`` (names, locations, start values)."""
    close = st.text.find(")", body_start)
    if close < 0:
        raise fail("NEW( is not closed", st.offset + len(st.text), "write NEW(name1 name2);")
    if st.text[close + 1:].strip():
        raise fail("unexpected text after NEW(...)", st.offset + close + 1,
                   "end the statement with ';' after ')'")
    body, pos = st.text[:close], body_start
    if not body[pos:].strip():
        raise fail("NEW() declares no parameter", st.offset + pos, "write NEW(name1 name2);")
    while body[pos:].strip():
        item = _NEW_ITEM.match(body, pos)
        if not item or item.end() == pos:
            bad = pos + len(body[pos:]) - len(body[pos:].lstrip())
            raise fail("expected a parameter name in NEW(...)", st.offset + bad,
                       "names are separated by blanks; 'name*0.5' gives a start value")
        first, last = item.group("first").lower(), item.group("last")
        names = [first]
        if last is not None:
            names = expand_label_range(first, last.lower())
            if names is None:
                raise fail(f"'{item.group('first')}-{last}' is not a label range",
                           st.offset + item.start("first"),
                           "a range reads like d1-d3: same prefix, ascending numbers")
        for name in names:
            if name in new_declared:
                raise fail(f"NEW parameter '{name}' is declared twice",
                           st.offset + item.start("first"), "declare each name once")
            new_declared[name] = st.offset + item.start("first")
            section.new_parameters.append((name, loc(st.offset + item.start("first"))))
            if item.group("start") is not None:
                section.starts[name] = float(item.group("start"))
        pos = item.end()


def _check_labels(expr: Expr, piece: str, piece_offset: int, new_declared: Collection[str],
                  known: set[str] | None, fail) -> None:
    """With known model labels, reject a label that is neither NEW nor a model label."""
    if known is None:
        return
    for name in sorted(expr.names()):
        if name in new_declared or name in known:
            continue
        where = re.search(rf"(?<![A-Za-z0-9_.]){re.escape(name)}(?![A-Za-z0-9_.])", piece,
                          re.IGNORECASE)
        pos = piece_offset + (where.start() if where else 0)
        raise fail(f"'{name}' is not a parameter label of the model nor a NEW parameter", pos,
                   f"label the parameter in MODEL, or declare NEW({name}); and define it "
                   f"with {name} = ...;")


def _check_acyclic(definitions: list[Definition], defined: Mapping[str, int], fail) -> None:
    """Reject definitions that depend on themselves, directly or through others."""
    uses = {d.name: d.expr.names() & defined.keys() for d in definitions}
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "open":
            cycle = path[path.index(name):] + [name]
            raise fail(f"'{name}' is defined in terms of itself ({' -> '.join(cycle)})",
                       defined[name], "define each NEW parameter from model labels or "
                       "earlier NEW parameters")
        state[name] = "open"
        for used in sorted(uses[name]):
            visit(used, path + [name])
        state[name] = "done"

    for definition in definitions:
        visit(definition.name, [])
