"""Parser for the body of the Mplus MODEL command: text -> :class:`ParsedModel`.

A hand-written tokenizer keeps every token's line and column, so each syntax problem is
raised as a :class:`ModelSyntaxError` with a caret under the offending spot. The parser
records what the user wrote as :class:`Term`s in source order; it applies no defaults.

Statement forms (keywords are case-insensitive, names are stored lower-case)::

    f1 f2 BY y1-y3;          y1 y2 ON x1 x2;        y1 WITH y2 y3;
    y1 y2 PWITH z1 z2;       y1 y2 PON x1 x2;       y1-y3@1;   [y1 u$1*0.5] (m);
    s | y ON x;              s | f BY y;            logv | y;
    i s q | y1@0 y2@1 y3@2;  (growth shorthand)     %WITHIN%  %BETWEEN%  %BETWEEN school%
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Sequence

from jaxsem.errors import ModelSyntaxError
from jaxsem.syntax.statements import Modifier, ParsedModel, SourceLoc, Term

__all__ = ["parse_mplus_model"]

_TOKEN_PATTERN = re.compile(r"""
    (?P<newline>\n)
  | (?P<space>[ \t\r\f\v]+)
  | (?P<comment>![^\n]*)
  | (?P<level>%[^%\n]*%?)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<symbol>[;\[\]()@*|$+\-&#])
  | (?P<other>.)
""", re.VERBOSE)

_KEYWORD_OPS = {"by": "=~", "on": "~", "with": "~~", "pwith": "~~", "pon": "~"}
_UNSUPPORTED_KEYWORDS = {
    "xwith": ("latent variable interactions (XWITH) are not supported yet",
              "Remove the interaction, or model a product of observed variables."),
    "at": ("individually-varying times of observation (AT) are not supported yet",
           "Use fixed time scores: i s | y1@0 y2@1 y3@2;"),
}
_LEVEL_WORDS = ("WITHIN", "BETWEEN", "OVERALL")
_GROWTH_ORDERS = ("intercept", "linear", "quadratic", "cubic")
_NUMERIC_SUFFIX = re.compile(r"^(.*?)(\d+)$")
_STRAY_HINTS = {
    ",": "Separate variable names with spaces, not commas.",
    "=": "Equations belong in MODEL CONSTRAINT; use BY, ON or WITH here.",
    ":": "Pass only the statements after 'MODEL:', without command headers.",
}


@dataclass(frozen=True)
class _Token:
    """One token with its 1-based position; ``kind`` is name, number, level, symbol or other."""
    kind: str
    text: str
    line: int
    col: int

    @property
    def end_col(self) -> int:
        return self.col + len(self.text)

    def is_symbol(self, symbol: str) -> bool:
        return self.kind == "symbol" and self.text == symbol


@dataclass
class _Item:
    """A variable or range, with what followed it (threshold, ``@``/``*`` modifier)."""
    names: list[str]
    token: _Token
    threshold: int | None = None
    bracket_token: _Token | None = None
    modifier_token: _Token | None = None
    fixed: float | None = None
    start: float | None = None
    free: bool = False

    def modifier(self, label: str | None = None) -> Modifier:
        return Modifier(fixed=self.fixed, start=self.start, free=self.free, label=label)

    @property
    def loc(self) -> SourceLoc:
        return SourceLoc(self.token.line, self.token.col)


@dataclass
class _LabelGroup:
    """An equality label ``(a)`` or label list ``(a b c)``."""
    labels: list[str]
    token: _Token


@dataclass
class _Param:
    """A labelable parameter before labels are assigned; ``entry`` is its item's index."""
    lhs: str
    op: str
    rhs: str
    item: _Item
    entry: int


@dataclass
class _Cursor:
    """Position in the token list of one statement."""
    tokens: list[_Token]
    index: int = 0

    def peek(self, offset: int = 0) -> _Token | None:
        position = self.index + offset
        return self.tokens[position] if position < len(self.tokens) else None

    def next(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def next_is(self, symbol: str, offset: int = 0) -> bool:
        token = self.peek(offset)
        return token is not None and token.is_symbol(symbol)


def parse_mplus_model(text: str, names: Sequence[str] | None = None) -> ParsedModel:
    """Parse the body of an Mplus MODEL command into a :class:`ParsedModel`.

    ``names``: the NAMES (or USEVARIABLES) list; needed only to expand ranges such as
    ``a-c`` whose ends have no numeric suffix. Raises :class:`ModelSyntaxError`.
    """
    return _MplusParser(text, names).parse()


class _MplusParser:
    """Turns the token stream into Terms, one statement at a time."""

    def __init__(self, text: str, names: Sequence[str] | None):
        self.text = text
        self.names = [name.lower() for name in names] if names is not None else None
        self.model = ParsedModel(dialect="mplus", text=text)
        self.level = "within"

    # -- errors ---------------------------------------------------------------------

    def error(self, message: str, token: _Token, hint: str | None = None,
              after: bool = False) -> ModelSyntaxError:
        """An error at ``token`` (or just after it, with ``after``)."""
        col = token.end_col if after else token.col
        return ModelSyntaxError(message, self.text, token.line, col, hint)

    # -- tokens and statements ------------------------------------------------------

    def tokenize(self) -> list[_Token]:
        """All tokens except spaces and ``!`` comments."""
        tokens, line, line_start = [], 1, 0
        for match in _TOKEN_PATTERN.finditer(self.text):
            kind, value = match.lastgroup, match.group()
            token = _Token(kind, value, line, match.start() - line_start + 1)
            if kind == "newline":
                line, line_start = line + 1, match.end()
            elif kind == "level" and (len(value) == 1 or not value.endswith("%")):
                raise self.error(f"level label {value.strip()!r} has no closing '%'", token,
                                 "Write level labels as %WITHIN% or %BETWEEN%.")
            elif kind not in ("space", "comment"):
                tokens.append(token)
        return tokens

    def parse(self) -> ParsedModel:
        statement: list[_Token] = []
        for token in self.tokenize():
            if token.kind == "level":
                if statement:
                    raise self.error(f"missing ';' before {token.text}", statement[-1],
                                     "End every statement with ';'.", after=True)
                self.enter_level(token)
            elif token.is_symbol(";"):
                if statement:
                    self.parse_statement(statement)
                statement = []
            else:
                statement.append(token)
        if statement:
            raise self.error("missing ';' at the end of the statement", statement[-1],
                             "End every statement with ';'.", after=True)
        return self.model

    def enter_level(self, token: _Token) -> None:
        """Switch to the level named by a ``%...%`` label."""
        words = token.text[1:-1].split()
        if "#" in token.text:
            raise self.error("mixture class labels are not supported yet", token,
                             "jaxsem fits multilevel models without latent classes.")
        keyword = words[0].upper() if words else ""
        if keyword == "BETWEEN" and len(words) <= 2:
            level = words[1].lower() if len(words) == 2 else "between"
        elif keyword in ("WITHIN", "OVERALL") and len(words) == 1:
            level = "within"
        else:
            guess = difflib.get_close_matches(keyword, _LEVEL_WORDS, n=1, cutoff=0.5)
            hint = (f"Did you mean %{guess[0]}%?" if guess and len(words) <= 1 else
                    "Level labels are %WITHIN%, %BETWEEN% and %BETWEEN clustervar%.")
            raise self.error(f"unknown level label {token.text}", token, hint)
        self.level = level
        self.note_level()

    def note_level(self) -> None:
        if self.level not in self.model.levels:
            self.model.levels.append(self.level)

    def parse_statement(self, tokens: list[_Token]) -> None:
        """Dispatch one ';'-terminated statement to its form."""
        self.note_level()
        self.check_unsupported_symbols(tokens)
        self.check_balance(tokens)
        bars = [index for index, token in enumerate(tokens) if token.is_symbol("|")]
        if bars:
            if len(bars) > 1:
                raise self.error("only one '|' is allowed in a statement", tokens[bars[1]],
                                 "Write each random effect in a statement of its own.")
            self.parse_bar_statement(tokens[:bars[0]], tokens[bars[0]], tokens[bars[0] + 1:])
            return
        keywords = self.keyword_positions(tokens)
        if keywords:
            self.parse_keyword_statement(tokens, keywords[0])
        else:
            self.parse_parameter_list(tokens)

    def check_unsupported_symbols(self, tokens: list[_Token]) -> None:
        for token in tokens:
            if token.is_symbol("&"):
                raise self.error("lagged variables (&) are not supported yet", token,
                                 "Create the lagged variable in the data instead.")
            if token.is_symbol("#"):
                raise self.error("mixture class variables (#) are not supported yet", token,
                                 "jaxsem fits models without latent classes.")

    def check_balance(self, tokens: list[_Token]) -> None:
        """Every '[' and '(' closes before ';'; no nesting."""
        pairs = {"[": "]", "(": ")"}
        opened: list[_Token] = []
        for token in tokens:
            if token.kind != "symbol" or token.text not in "[]()":
                continue
            if token.text in pairs:
                if opened and (opened[-1].text == "(" or token.text == "["):
                    raise self.error(f"'{opened[-1].text}' is not closed before '{token.text}'",
                                     opened[-1], f"Close it with '{pairs[opened[-1].text]}'.")
                opened.append(token)
            elif not opened:
                raise self.error(f"'{token.text}' has no matching opening bracket", token,
                                 "Remove it or add the opening bracket.")
            elif pairs[opened[-1].text] != token.text:
                raise self.error(f"'{opened[-1].text}' is not closed before '{token.text}'",
                                 opened[-1], f"Close it with '{pairs[opened[-1].text]}'.")
            else:
                opened.pop()
        if opened:
            raise self.error(f"'{opened[-1].text}' is not closed", opened[-1],
                             f"Close it with '{pairs[opened[-1].text]}' before ';'.")

    def keyword_positions(self, tokens: list[_Token]) -> list[int]:
        """Indexes of BY/ON/WITH/PWITH/PON; one keyword per statement."""
        positions = []
        for index, token in enumerate(tokens):
            word = token.text.lower() if token.kind == "name" else ""
            if word in _UNSUPPORTED_KEYWORDS:
                message, hint = _UNSUPPORTED_KEYWORDS[word]
                raise self.error(message, token, hint)
            if word in _KEYWORD_OPS:
                positions.append(index)
        if len(positions) > 1:
            first, second = tokens[positions[0]], tokens[positions[1]]
            before = [t for t in tokens[positions[0] + 1:positions[1]] if t.line < second.line]
            if before:
                raise self.error("missing ';' at the end of the statement", before[-1],
                                 f"{second.text} on line {second.line} starts a new statement;"
                                 " end the previous one with ';'.", after=True)
            raise self.error(f"a statement has one keyword, but {second.text} follows "
                             f"{first.text}", second, "Split it into two statements.")
        return positions

    # -- entries: variables, ranges, modifiers, brackets, labels ---------------------

    def parse_entries(self, tokens: list[_Token]) -> list[_Item | _LabelGroup]:
        """Variables (with modifiers), bracketed means/thresholds and labels, in order."""
        cursor, entries = _Cursor(tokens), []
        while (token := cursor.peek()) is not None:
            if token.kind == "name":
                entries.append(self.parse_item(cursor, None))
            elif token.is_symbol("("):
                entries.append(self.parse_label(cursor))
            elif token.is_symbol("["):
                bracket = cursor.next()
                if cursor.next_is("]"):
                    raise self.error("empty brackets", bracket,
                                     "Name the variables whose means you mean: [y1 y2];")
                while not cursor.next_is("]"):
                    if cursor.next_is("("):
                        entries.append(self.parse_label(cursor))
                    elif cursor.peek().kind == "name":
                        entries.append(self.parse_item(cursor, bracket))
                    else:
                        raise self.stray(cursor.peek())
                cursor.next()
            else:
                raise self.stray(token)
        return entries

    def stray(self, token: _Token) -> ModelSyntaxError:
        if token.is_symbol("@") or token.is_symbol("*"):
            return self.error(f"'{token.text}' must follow a variable name", token,
                              "Write the modifier right after the variable: y1@0 or y1*0.5.")
        if token.kind == "number":
            return self.error(f"unexpected number {token.text}", token,
                              "A number belongs after '@' (fixed) or '*' (start value).")
        return self.error(f"unexpected {token.text!r}", token,
                          _STRAY_HINTS.get(token.text, "Remove it."))

    def parse_item(self, cursor: _Cursor, bracket: _Token | None) -> _Item:
        """A name or range, an optional ``$k`` threshold and an optional modifier."""
        first = cursor.next()
        threshold = self.parse_threshold(cursor, first, bracket)
        names = [first.text.lower()]
        if cursor.next_is("-"):
            dash = cursor.next()
            last = cursor.peek()
            if last is None or last.kind != "name":
                raise self.error("'-' must be followed by the last variable of the range",
                                 dash, "Write ranges as y1-y6.")
            cursor.next()
            last_threshold = self.parse_threshold(cursor, last, bracket)
            if last_threshold != threshold:
                raise self.error("both ends of a threshold range need the same threshold",
                                 last, f"Write [{first.text}$1-{last.text}$1].")
            names = self.expand_range(first, last)
        item = _Item(names, first, threshold, bracket)
        self.parse_modifier(cursor, item)
        return item

    def parse_threshold(self, cursor: _Cursor, name: _Token, bracket: _Token | None) -> int | None:
        """``$k`` after ``name`` (only inside brackets), or None."""
        if not cursor.next_is("$"):
            return None
        dollar = cursor.next()
        number = cursor.peek()
        if number is None or number.kind != "number" or not number.text.isdigit() \
                or int(number.text) < 1:
            raise self.error("'$' needs a threshold number", dollar,
                             f"Write {name.text}$1 for the first threshold.")
        cursor.next()
        if bracket is None:
            raise self.error("thresholds go in brackets", name,
                             f"Write [{name.text}${number.text}];")
        return int(number.text)

    def expand_range(self, first: _Token, last: _Token) -> list[str]:
        """``a-c``: by position in the NAMES list when both ends are on it (Mplus's MODEL
        rule: lists follow the order of the variables), then in the order latent
        variables were defined, else by numeric suffix."""
        start, stop = first.text.lower(), last.text.lower()
        for order in (self.names or [], self.latent_order()):
            if start in order and stop in order:
                low, high = order.index(start), order.index(stop)
                span = order[min(low, high):max(low, high) + 1]
                return span if low <= high else span[::-1]
        numeric = _numeric_range(start, stop)
        if numeric is not None:
            return numeric
        start_match, stop_match = _NUMERIC_SUFFIX.match(start), _NUMERIC_SUFFIX.match(stop)
        if start_match and stop_match:
            raise self.error(f"range {first.text}-{last.text} mixes the prefixes "
                             f"{start_match[1]!r} and {stop_match[1]!r}", first,
                             "Both ends of a range need the same prefix, e.g. y1-y6.")
        if self.names is not None:
            missing = start if start not in self.names else stop
            raise self.error(f"range {first.text}-{last.text}: {missing!r} is not in the NAMES "
                             "list", first, "Ranges without numeric suffixes follow NAMES.")
        raise self.error(f"cannot expand the range {first.text}-{last.text}: ranges need numeric "
                         "suffixes or the NAMES list", first,
                         "Write y1-y6, or pass the NAMES list: parse_mplus_model(text, names=...).")

    def latent_order(self) -> list[str]:
        """Latent variables in order of definition so far (ranges over factors)."""
        seen = [t.lhs for t in self.model.terms if t.op == "=~"]
        seen += [t.random for t in self.model.terms if t.random]
        return list(dict.fromkeys(seen))

    def parse_modifier(self, cursor: _Cursor, item: _Item) -> None:
        """``@v`` (fixed), ``*`` (free) or ``*v`` (free with start value)."""
        token = cursor.peek()
        if token is None or not (token.is_symbol("@") or token.is_symbol("*")):
            return
        cursor.next()
        item.modifier_token = token
        value = self.parse_number(cursor)
        if token.text == "@":
            if value is None:
                raise self.error("'@' needs a number", token,
                                 f"Write {item.token.text}@0 to fix the parameter at 0.")
            item.fixed = value
        else:
            item.free, item.start = True, value
        extra = cursor.peek()
        if extra is not None and (extra.is_symbol("@") or extra.is_symbol("*")):
            raise self.error("only one '@' or '*' per parameter", extra,
                             "Use '@v' to fix a parameter or '*v' to free it with start v.")

    @staticmethod
    def parse_number(cursor: _Cursor) -> float | None:
        """A signed number if one comes next, else None (nothing consumed)."""
        offset = 1 if cursor.next_is("-") or cursor.next_is("+") else 0
        number = cursor.peek(offset)
        if number is None or number.kind != "number":
            return None
        sign = -1.0 if cursor.next_is("-") else 1.0
        cursor.index += offset + 1
        return sign * float(number.text)

    def parse_label(self, cursor: _Cursor) -> _LabelGroup:
        """``(a)``, ``(1)``, ``(a b c)`` or ``(p1-p3)``."""
        opening = cursor.next()
        labels: list[str] = []
        while not cursor.next_is(")"):
            token = cursor.next()
            if token.is_symbol("*"):
                raise self.error("BSEM/ESEM label sets (*) are not supported yet", token,
                                 "Use an equality label such as (a).")
            if token.kind in ("name", "number") and cursor.next_is("-"):
                dash = cursor.next()
                last = cursor.peek()
                if last is None or last.kind != token.kind:
                    raise self.error("'-' must be followed by the last label of the range",
                                     dash, "Write label ranges as (p1-p3) or (1-3).")
                cursor.next()
                expanded = _numeric_range(token.text.lower(), last.text.lower())
                if expanded is None:
                    raise self.error(f"cannot expand the label range {token.text}-{last.text}",
                                     token, "Label ranges need one prefix and numbers: "
                                     "(p1-p3) or (1-3).")
                labels.extend(expanded)
            elif token.kind == "number":
                labels.append(token.text)
            elif token.kind == "name":
                labels.append(token.text.lower())
            else:
                raise self.error(f"unexpected {token.text!r} in a label", token,
                                 "Labels are names or numbers: (a), (1), (a b c).")
        cursor.next()
        if not labels:
            raise self.error("empty label '()'", opening,
                             "Put a label name or number inside the parentheses, e.g. (a).")
        return _LabelGroup(labels, opening)

    # -- statement forms ------------------------------------------------------------

    def parse_keyword_statement(self, tokens: list[_Token], position: int) -> None:
        """``BY``, ``ON``, ``WITH``, ``PWITH`` and ``PON``."""
        keyword = tokens[position]
        word = keyword.text.lower()
        left = self.parse_entries(tokens[:position])
        right = self.parse_entries(tokens[position + 1:])
        self.require_plain(left, f"on the left of {keyword.text}",
                           f"Put modifiers and labels after the variables on the right of "
                           f"{keyword.text}.")
        left_names = [name for item in left for name in item.names]
        right_items = [(index, item) for index, item in enumerate(right)
                       if isinstance(item, _Item)]
        for index, item in right_items:
            if item.bracket_token is not None:
                raise self.error(f"brackets cannot appear in a {keyword.text} statement",
                                 item.bracket_token, "Give means in a statement of their own: [y];")
        if not left_names or not right_items:
            raise self.missing_side(keyword, left_names)
        op = _KEYWORD_OPS[word]
        if word in ("pwith", "pon"):
            pairs = [(index, item, name) for index, item in right_items for name in item.names]
            if len(pairs) != len(left_names):
                raise self.error(f"{keyword.text} pairs variables by position, but the left side "
                                 f"has {len(left_names)} and the right side {len(pairs)}", keyword,
                                 "List as many variables on each side.")
            params = [_Param(lhs, op, name, item, index)
                      for lhs, (index, item, name) in zip(left_names, pairs)]
        else:
            params = [_Param(lhs, op, name, item, index)
                      for lhs in left_names for index, item in right_items for name in item.names]
        if word == "with":
            params = self.distinct_covariances(params)
        self.emit(params, right)

    def missing_side(self, keyword: _Token, left: list[str]) -> ModelSyntaxError:
        """BY/ON/WITH with nothing on one side."""
        word = keyword.text.upper()
        if word == "BY" and left:
            return self.error("BY has no indicators", keyword,
                              "List the indicators after BY: f BY y1 y2 y3;", after=True)
        if word in ("ON", "PON") and left:
            return self.error(f"{keyword.text} has no predictors", keyword,
                              f"List the predictors after {keyword.text}: y ON x1 x2;", after=True)
        if word in ("WITH", "PWITH"):
            return self.error(f"{keyword.text} needs variables on both sides", keyword,
                              "Write y1 WITH y2;", after=bool(left))
        what = "factor" if word == "BY" else "outcome"
        return self.error(f"{keyword.text} needs at least one {what} before it", keyword,
                          "Write f BY y1 y2; or y ON x;")

    @staticmethod
    def distinct_covariances(params: list[_Param]) -> list[_Param]:
        """``y1-y3 WITH y1-y3`` means each covariance once and no variances."""
        seen, kept = set(), []
        for param in params:
            pair = frozenset((param.lhs, param.rhs))
            if param.lhs != param.rhs and pair not in seen:
                seen.add(pair)
                kept.append(param)
        return kept

    def require_plain(self, entries: list[_Item | _LabelGroup], where: str, hint: str) -> None:
        """Only bare names and ranges (no modifier, label or brackets) in ``entries``."""
        for entry in entries:
            if isinstance(entry, _LabelGroup):
                raise self.error(f"a label cannot appear {where}", entry.token, hint)
            if entry.bracket_token is not None:
                raise self.error(f"brackets cannot appear {where}", entry.bracket_token, hint)
            if entry.modifier_token is not None:
                raise self.error(f"'{entry.modifier_token.text}' cannot appear {where}",
                                 entry.modifier_token, hint)

    def parse_parameter_list(self, tokens: list[_Token]) -> None:
        """Variances ``y1-y3@1``, means ``[y1*0.5]`` and thresholds ``[u$1]``."""
        entries = self.parse_entries(tokens)
        params = []
        for index, item in enumerate(entries):
            if isinstance(item, _LabelGroup):
                continue
            if index > 0 and item.bracket_token is None:
                self.check_keyword_typo(item)
            for name in item.names:
                if item.bracket_token is None:
                    params.append(_Param(name, "~~", name, item, index))
                elif item.threshold is None:
                    params.append(_Param(name, "~1", "", item, index))
                else:
                    params.append(_Param(name, "|", f"t{item.threshold}", item, index))
        if not params:
            raise self.error("a label needs parameters before it", tokens[0],
                             "Put the label after the parameters it names: y1 y2 (a);")
        self.emit(params, entries)

    def check_keyword_typo(self, item: _Item) -> None:
        """A near-miss of BY/ON/WITH inside a variance list is almost surely a typo."""
        word = item.token.text.lower()
        if (len(item.names) > 1 or item.modifier_token is not None or any(c.isdigit() for c in word)
                or (self.names is not None and word in self.names)):
            return
        guess = difflib.get_close_matches(word, list(_KEYWORD_OPS), n=1, cutoff=0.75)
        if guess:
            raise self.error(f"unknown keyword {item.token.text!r}", item.token,
                             f"Did you mean {guess[0].upper()}?")

    def emit(self, params: list[_Param], entries: list[_Item | _LabelGroup]) -> None:
        """Assign labels (one label group per physical line) and append the Terms."""
        labels: list[str | None] = [None] * len(params)
        label_entry_by_line: dict[int, int] = {}
        for index, group in enumerate(entries):
            if not isinstance(group, _LabelGroup):
                continue
            line = group.token.line
            if line in label_entry_by_line:
                raise self.error("only one label group per line", group.token,
                                 "Put the parameters for this label on a new line.")
            label_entry_by_line[line] = index
            targets = [k for k, param in enumerate(params)
                       if param.entry < index and param.item.token.line == line]
            if not targets:
                raise self.error("this label has no parameter before it on its line", group.token,
                                 "A label names the parameters written before it on the same line.")
            if len(group.labels) == 1:
                group_labels = group.labels * len(targets)
            elif len(group.labels) == len(targets):
                group_labels = group.labels
            else:
                raise self.error(f"the label list has {len(group.labels)} labels but its line has "
                                 f"{len(targets)} parameters", group.token,
                                 "Give one label for all of them or one per parameter.")
            for target, label in zip(targets, group_labels):
                labels[target] = label
        for param in params:
            label_entry = label_entry_by_line.get(param.item.token.line)
            if label_entry is not None and param.entry > label_entry:
                raise self.error("a parameter follows the label on its line", param.item.token,
                                 "Mplus allows one label group per line, at its end; "
                                 "start a new line.")
        for param, label in zip(params, labels):
            self.model.terms.append(Term(param.lhs, param.op, param.rhs, self.level,
                                         param.item.modifier(label), param.item.loc))

    def parse_bar_statement(self, left_tokens: list[_Token], bar: _Token,
                            right_tokens: list[_Token]) -> None:
        """Random slopes/loadings/variances (``s | y ON x``) and growth (``i s | y1@0 y2@1``)."""
        hint = "Labels are not allowed on statements with '|' (random effects or growth)."
        left = self.parse_entries(left_tokens)
        self.require_plain(left, "on the left of '|'", "Name the random coefficients: s | y ON x;")
        coefficients = [(item, name) for item in left for name in item.names]
        if not coefficients:
            raise self.error("'|' needs the name of a random coefficient before it", bar,
                             "Write s | y ON x; or i s | y1@0 y2@1 y3@2;")
        misplaced = self.keyword_positions(left_tokens)
        if misplaced:
            raise self.error(f"{left_tokens[misplaced[0]].text} cannot come before '|'",
                             left_tokens[misplaced[0]],
                             "Write the random coefficient first: s | y ON x;")
        keywords = self.keyword_positions(right_tokens)
        if keywords:
            self.parse_random_coefficient(coefficients, right_tokens, keywords[0], hint)
            return
        right = self.parse_entries(right_tokens)
        for entry in right:
            if isinstance(entry, _LabelGroup):
                raise self.error("a label cannot appear here", entry.token, hint)
            if entry.bracket_token is not None:
                raise self.error("brackets cannot appear after '|'", entry.bracket_token,
                                 "Give means in a statement of their own: [y];")
        if not right:
            raise self.error("'|' needs variables after it", bar,
                             "Write logv | y; or i s | y1@0 y2@1 y3@2;", after=True)
        item = right[0]
        if (len(coefficients) == 1 and len(right) == 1 and len(item.names) == 1
                and item.modifier_token is None):
            self.model.terms.append(Term(item.names[0], "~~", item.names[0], self.level,
                                         loc=item.loc, random=coefficients[0][1]))
        else:
            self.parse_growth(coefficients, right)

    def parse_random_coefficient(self, coefficients: list[tuple[_Item, str]],
                                 tokens: list[_Token], position: int, hint: str) -> None:
        """``s | y ON x`` and ``s | f BY y``: one coefficient, one pair of variables."""
        keyword = tokens[position]
        if keyword.text.lower() not in ("on", "by"):
            raise self.error(f"{keyword.text} cannot have a random coefficient", keyword,
                             "Only ON (random slope) and BY (random loading) can.")
        if len(coefficients) > 1:
            raise self.error("a random slope statement names one random coefficient",
                             coefficients[1][0].token, "Write one statement per coefficient.")
        left = self.parse_entries(tokens[:position])
        right = self.parse_entries(tokens[position + 1:])
        where = "in a random coefficient statement"
        for entries in (left, right):
            for entry in entries:
                if isinstance(entry, _LabelGroup):
                    raise self.error(f"a label cannot appear {where}", entry.token, hint)
            self.require_plain(entries, where,
                               "A random coefficient has no value of its own; remove it.")
        left_names = [(item, name) for item in left for name in item.names]
        right_names = [(item, name) for item in right for name in item.names]
        if not left_names or not right_names:
            raise self.missing_side(keyword, [name for _, name in left_names])
        for side in (left_names, right_names):
            if len(side) > 1:
                raise self.error("a random coefficient statement takes one variable on each "
                                 "side", side[1][0].token,
                                 "Mplus allows one random coefficient per statement: write "
                                 f"s1 | y1 {keyword.text} x; s2 | y2 {keyword.text} x;")
        item, rhs = right_names[0]
        op = _KEYWORD_OPS[keyword.text.lower()]
        self.model.terms.append(Term(left_names[0][1], op, rhs, self.level, loc=item.loc,
                                     random=coefficients[0][1]))

    def parse_growth(self, coefficients: list[tuple[_Item, str]], outcomes: list[_Item]) -> None:
        """``i s q | y1@0 y2@1 y3@2``: the k-th factor loads time score ** k."""
        factors = [name for _, name in coefficients]
        if len(factors) > len(_GROWTH_ORDERS):
            raise self.error("growth shorthand takes at most four factors (up to cubic)",
                             coefficients[len(_GROWTH_ORDERS)][0].token,
                             "Use i s q c | ... at most, or define the factors with BY.")
        for item in outcomes:
            if len(factors) == 1:
                continue
            if item.modifier_token is None:
                raise self.error(f"{item.token.text} needs a time score", item.token,
                                 f"Write {item.token.text}@1 (fixed) or {item.token.text}* (free).")
            if len(item.names) > 1:
                raise self.error("each outcome needs its own time score", item.token,
                                 "Write y1@0 y2@1 y3@2 instead of a range.")
            if item.free and len(factors) > 2:
                raise self.error("free time scores (*) need a linear growth model",
                                 item.modifier_token, "Fix the time scores (@) with i s q | ...")
        for order, factor in enumerate(factors):
            for item in outcomes:
                for name in item.names:
                    if order == 0:
                        modifier = Modifier(fixed=1.0)
                    elif item.free:
                        modifier = Modifier(free=True, start=item.start)
                    else:
                        modifier = Modifier(fixed=item.fixed ** order)
                    self.model.terms.append(Term(factor, "=~", name, self.level, modifier,
                                                 item.loc, origin="growth"))
        self.model.growth_factors.update(factors)


def _numeric_range(start: str, stop: str) -> list[str] | None:
    """``y1``..``y3`` or ``1``..``3`` (same prefix, increasing or decreasing), else None."""
    start_match, stop_match = _NUMERIC_SUFFIX.match(start), _NUMERIC_SUFFIX.match(stop)
    if not (start_match and stop_match and start_match[1] == stop_match[1]):
        return None
    low, high = int(start_match[2]), int(stop_match[2])
    width = len(start_match[2]) if len(start_match[2]) == len(stop_match[2]) else 0
    step = 1 if high >= low else -1
    return [f"{start_match[1]}{number:0{width}d}" for number in range(low, high + step, step)]
