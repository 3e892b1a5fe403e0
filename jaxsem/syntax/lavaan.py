"""lavaan-style model syntax -> :class:`ParsedModel`.

Supported: ``=~``, ``~``, ``~~``, ``~ 1`` intercepts, thresholds ``u | t1 + t2``,
modifiers ``a*x`` (label), ``0.5*x`` (fixed), ``NA*x`` (free), ``start(0.5)*x``,
``label("a")*x`` / ``equal("a")*x``, ``prior("normal(0, 10)")*x`` (blavaan-style),
several left-hand sides ``y1 + y2 ~ x``, ``level: 1`` / ``level: 2`` / ``level: 3``
blocks, ``:=`` defined parameters, ``==`` / ``<`` / ``>`` constraints, comments with
``#`` or ``!``, statements separated by newlines or ``;`` and continued on the next line
after a trailing operator or before a leading ``+``.

jaxsem extensions (lavaan has no random slopes): ``s | y ~ x`` (random slope),
``s | f =~ y`` (random loading) and ``logv | y ~~ y`` (random log residual variance),
with the same meaning as Mplus's ``s | y ON x``, ``s | f BY y`` and ``logv | y``.

Names are case-sensitive, as in lavaan.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from jaxsem.errors import ModelSyntaxError, source_location
from jaxsem.syntax.statements import (Constraint, Definition, Modifier, ParsedModel,
                                      SourceLoc, Term)

_TOKEN = re.compile(r"""
    (?P<ws>[ \t\r]+)
  | (?P<comment>[#!][^\n]*)
  | (?P<newline>\n)
  | (?P<string>"[^"\n]*"|'[^'\n]*')
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_.][A-Za-z0-9_.]*)
  | (?P<op>~\*~|=~|~~|<~|:=|==|<=|>=|~|\||\+|\*|\(|\)|,|:|;|<|>|-|/|\^)
""", re.VERBOSE)

_CONTINUES = {"+", "*", "=~", "~", "~~", "|", ":=", "==", "<", ">", ",", "(", "-", "/",
              "^", ":"}
_FORMULA_OPS = {"=~", "~", "~~"}
_LEVEL_NAMES = {"1": "within", "2": "between", "3": "level3"}


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    pos: int


class _Statement:
    """Tokens of one statement, with access to the source for errors."""

    def __init__(self, toks: list[_Tok], text: str):
        self.toks, self.text, self.i = toks, text, 0

    def peek(self, k: int = 0) -> _Tok | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def next(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            self.fail_at_end("the statement ends too early")
        self.i += 1
        return tok

    def expect(self, text: str, what: str) -> _Tok:
        tok = self.peek()
        if tok is None or tok.text != text:
            self.fail(tok, f"expected {what}")
        return self.next()

    def fail(self, tok: _Tok | None, message: str, hint: str | None = None):
        if tok is None:
            self.fail_at_end(message, hint)
        line, col = source_location(self.text, tok.pos)
        raise ModelSyntaxError(message, self.text, line, col, hint)

    def fail_at_end(self, message: str, hint: str | None = None):
        last = self.toks[-1]
        line, col = source_location(self.text, last.pos + len(last.text))
        raise ModelSyntaxError(message, self.text, line, col, hint)

    def loc(self, tok: _Tok) -> SourceLoc:
        return SourceLoc(*source_location(self.text, tok.pos))


def _tokenize(text: str) -> list[_Tok]:
    toks, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            line, col = source_location(text, pos)
            raise ModelSyntaxError(f"unexpected character {text[pos]!r}", text, line, col,
                                   "lavaan syntax uses =~ ~ ~~ | := == < > + * and names")
        kind = m.lastgroup
        if kind not in ("ws", "comment"):
            toks.append(_Tok(kind, m.group(), pos))
        pos = m.end()
    return toks


def _split_statements(toks: list[_Tok]) -> list[list[_Tok]]:
    """Group tokens into statements at newlines and ``;``.

    A newline does not end a statement inside parentheses, after an operator that
    needs a right-hand side, or before a line that starts with ``+``.
    """
    statements, current, depth = [], [], 0
    for i, tok in enumerate(toks):
        if tok.text == "(":
            depth += 1
        elif tok.text == ")":
            depth -= 1
        if tok.kind == "newline" or tok.text == ";":
            if tok.kind == "newline":
                nxt = next((t for t in toks[i + 1:] if t.kind != "newline"), None)
                if depth > 0 or (current and current[-1].text in _CONTINUES) or (
                        nxt is not None and current and nxt.text == "+"):
                    continue
            if current:
                statements.append(current)
            current, depth = [], 0
            continue
        current.append(tok)
    if current:
        statements.append(current)
    return statements


def parse_lavaan_model(text: str) -> ParsedModel:
    """Parse lavaan-style model text into Terms, definitions and constraints."""
    from jaxsem.syntax.expressions import parse_expression  # noqa: PLC0415 (cycle-free lazy import)

    model = ParsedModel(dialect="lavaan", text=text)
    level = "within"
    seen_level_block = False
    for toks in _split_statements(_tokenize(text)):
        st = _Statement(toks, text)
        first = toks[0]
        if first.kind == "name" and len(toks) > 1 and toks[1].text == ":" and (
                first.text.lower() in ("level", "group", "class")):
            level = _parse_level(st, model, seen_level_block)
            seen_level_block = True
            continue
        top_ops = [t for t in toks if t.text in (":=", "==", "<", ">", "<=", ">=")]
        if top_ops:
            _parse_expression_statement(st, top_ops[0], model, parse_expression)
            continue
        _parse_formula(st, level, model)
    if seen_level_block and not model.levels:
        model.levels.append("within")
    return model


def _parse_level(st: _Statement, model: ParsedModel, seen_before: bool) -> str:
    keyword = st.next()
    st.next()  # ':'
    if keyword.text.lower() != "level":
        st.fail(keyword, f"'{keyword.text}:' blocks (multiple groups or classes) are not "
                "supported yet", "remove the block, or fit each group separately")
    value = st.next()
    if st.peek() is not None:
        st.fail(st.peek(), "a level line holds only 'level: <number or name>'")
    if value.kind == "number":
        name = _LEVEL_NAMES.get(value.text)
        if name is None:
            st.fail(value, f"level {value.text} does not exist", "use level: 1, 2 or 3")
    else:
        known = [lv for lv in model.levels]
        name = value.text.lower() if value.text.lower() == "within" else (
            value.text if value.text in known else
            ("within" if not known else ("between" if len(known) == 1 else "level3")))
    if name in model.levels:
        st.fail(value, f"level '{value.text}' appears twice", "put all statements of a "
                "level in one block")
    if not seen_before and name != "within":
        st.fail(value, "the first level block must be the within level (level: 1)")
    model.levels.append(name)
    return name


def _parse_expression_statement(st: _Statement, op_tok: _Tok, model: ParsedModel,
                                parse_expression) -> None:
    op = op_tok.text
    toks = st.toks
    start, end = toks[0].pos, toks[-1].pos + len(toks[-1].text)
    left_text = st.text[start:op_tok.pos]
    right_start = op_tok.pos + len(op)
    right_text = st.text[right_start:end]
    if op in ("<=", ">="):
        st.fail(op_tok, f"'{op}' is not a lavaan operator", "use < or >")
    if not right_text.strip():
        st.fail_at_end(f"'{op}' needs a right-hand side")
    rhs = parse_expression(right_text, full_text=st.text, offset=right_start,
                           case_insensitive=False)
    if op == ":=":
        if len(toks) < 2 or toks[0].kind != "name" or toks[1] is not op_tok:
            st.fail(toks[0], "a defined parameter reads 'name := expression'")
        model.definitions.append(Definition(toks[0].text, rhs, st.loc(toks[0])))
        return
    if not left_text.strip():
        st.fail(toks[0], f"'{op}' needs a left-hand side")
    lhs = parse_expression(left_text, full_text=st.text, offset=start, case_insensitive=False)
    model.constraints.append(Constraint(lhs, op, rhs, st.loc(op_tok)))


def _parse_names(st: _Statement, what: str) -> list[_Tok]:
    names = []
    while True:
        tok = st.next()
        if tok.kind != "name":
            st.fail(tok, f"expected a variable name in {what}")
        names.append(tok)
        if st.peek() is not None and st.peek().text == "+":
            st.next()
            continue
        return names


def _parse_formula(st: _Statement, level: str, model: ParsedModel) -> None:
    if level not in model.levels:
        model.levels.append(level)
    random = None
    toks = st.toks
    if (len(toks) > 2 and toks[0].kind == "name" and toks[1].text == "|"
            and any(t.text in _FORMULA_OPS for t in toks[2:])):
        random = st.next()
        st.next()  # '|'
    lhs = _parse_names(st, "the left-hand side")
    op_tok = st.next()
    op = op_tok.text
    if op == "<~":
        st.fail(op_tok, "composites (<~) are not supported")
    if op == "~*~":
        st.fail(op_tok, "scaling factors (~*~) are not supported yet")
    if op not in _FORMULA_OPS and op != "|":
        st.fail(op_tok, f"expected an operator (=~ ~ ~~ |) after the left-hand side, "
                f"found {op!r}")
    if op == "|" and random is None:
        _parse_thresholds(st, lhs, level, model)
        return
    if random is not None and len(lhs) != 1:
        st.fail(lhs[1], "a random coefficient belongs to one equation: write one "
                "outcome on the left of the operator")
    terms = _parse_rhs(st)
    for left in lhs:
        for rhs_tok, mod, is_intercept in terms:
            if is_intercept:
                if op != "~":
                    st.fail(rhs_tok, f"'1' (an intercept) only goes with '~', not {op!r}")
                term = Term(left.text, "~1", "", level, mod, st.loc(rhs_tok))
            else:
                term = Term(left.text, op, rhs_tok.text, level, mod, st.loc(rhs_tok))
            if random is not None:
                if mod != Modifier():
                    st.fail(rhs_tok, "a random coefficient takes no label, value or "
                            "start: it is a latent variable of the next level up")
                if op == "~~" and left.text != rhs_tok.text:
                    st.fail(rhs_tok, "a random residual variance reads 'logv | y ~~ y'")
                term = Term(term.lhs, term.op, term.rhs, level, Modifier(), term.loc,
                            random=random.text)
            model.terms.append(term)


def _parse_thresholds(st: _Statement, lhs: list[_Tok], level: str,
                      model: ParsedModel) -> None:
    for rhs_tok, mod, is_intercept in _parse_rhs(st):
        if is_intercept or not re.fullmatch(r"t[1-9][0-9]*", rhs_tok.text):
            st.fail(rhs_tok, "thresholds are written t1, t2, ...", "e.g. u | t1 + t2")
        for left in lhs:
            model.terms.append(Term(left.text, "|", rhs_tok.text, level, mod,
                                    st.loc(rhs_tok)))


def _parse_rhs(st: _Statement) -> list[tuple[_Tok, Modifier, bool]]:
    """Right-hand side terms: (name token, modifier, is_intercept)."""
    terms = []
    while True:
        mods = []
        while True:
            tok = st.peek()
            if tok is None:
                st.fail_at_end("expected a variable name")
            after = st.peek(1)
            if tok.kind == "number" and (after is None or after.text != "*"):
                st.next()
                if tok.text != "1":
                    st.fail(tok, f"a number alone on the right-hand side must be 1 "
                            f"(an intercept), found {tok.text}", "to fix a value, write "
                            f"{tok.text}*variable")
                terms.append((tok, _combine(st, mods), True))
                break
            if tok.kind == "name" and (after is None or after.text != "*") and (
                    after is None or after.text != "("):
                st.next()
                terms.append((tok, _combine(st, mods), False))
                break
            mods.append(_parse_modifier(st))
            st.expect("*", "'*' after a modifier")
        nxt = st.peek()
        if nxt is None:
            return terms
        if nxt.text != "+":
            st.fail(nxt, f"expected '+' or the end of the statement, found {nxt.text!r}")
        st.next()


def _parse_modifier(st: _Statement) -> tuple[str, object, _Tok]:
    tok = st.next()
    if tok.text == "-" and st.peek() is not None and st.peek().kind == "number":
        num = st.next()
        return ("fixed", -float(num.text), tok)
    if tok.kind == "number":
        return ("fixed", float(tok.text), tok)
    if tok.kind == "string":
        return ("label", tok.text[1:-1], tok)
    if tok.kind != "name":
        st.fail(tok, f"expected a modifier (number, NA, label, start(), prior()), "
                f"found {tok.text!r}")
    if tok.text == "NA":
        return ("free", True, tok)
    if st.peek() is not None and st.peek().text == "(":
        func = tok.text
        st.next()
        arg = st.next()
        if st.peek() is not None and st.peek().text == ",":
            st.fail(st.peek(), f"{func}() takes one value; several values (c(), "
                    "multiple groups) are not supported yet")
        st.expect(")", f"')' closing {func}(")
        if func == "start":
            value = _number(st, arg)
            return ("start", value, tok)
        if func in ("label", "equal"):
            if arg.kind != "string":
                st.fail(arg, f'{func}() takes a quoted label, e.g. {func}("a")')
            return ("label", arg.text[1:-1], tok)
        if func == "prior":
            if arg.kind != "string":
                st.fail(arg, 'prior() takes a quoted prior, e.g. prior("normal(0, 10)")')
            from jaxsem.priors import from_lavaan_prior  # noqa: PLC0415
            try:
                return ("prior", from_lavaan_prior(arg.text[1:-1]), tok)
            except Exception as exc:  # PriorError with our wording; add the place
                st.fail(arg, str(exc))
        if func == "c":
            st.fail(tok, "c() (values per group) is not supported yet: multiple groups "
                    "come in a later release")
        st.fail(tok, f"unknown modifier {func}()", "known: start(), label(), equal(), "
                "prior()")
    return ("label", tok.text, tok)


def _number(st: _Statement, tok: _Tok) -> float:
    if tok.kind != "number":
        st.fail(tok, "expected a number")
    return float(tok.text)


def _combine(st: _Statement, mods: list[tuple[str, object, _Tok]]) -> Modifier:
    fields: dict[str, object] = {}
    for key, value, tok in mods:
        if key in fields and fields[key] != value:
            st.fail(tok, f"two different {key} modifiers on one term")
        fields[key] = value
    if "fixed" in fields and fields.get("free"):
        st.fail(mods[0][2], "a term cannot be both fixed (a number) and free (NA)")
    return Modifier(**fields)
