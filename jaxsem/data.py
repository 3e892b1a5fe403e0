"""The data layer: a pandas DataFrame or a free-format text file -> numeric arrays with roles.

:func:`read_text_data` reads an Mplus-style free-format file; :func:`prepare_data` turns a
DataFrame into :class:`Data` for one-, two-, three-level and cross-classified models.
Every problem with the input is a :class:`~jaxsem.errors.DataError` that names the
variable, row or cluster and says what to do.

Steps of :func:`prepare_data`, in order:

1. names are resolved against the data: an exact match, else the one case-insensitive
   match (Mplus names are case-insensitive); DEFINE outputs count as data;
2. missing-value codes (numbers, ``"."``, ``"*"``; per variable or ``ALL``) become NaN;
3. cluster ids are read; a missing cluster id is an error, never a dropped row;
4. DEFINE transforms run in order: each expression is parsed and evaluated by
   :mod:`jaxsem.syntax.expressions` (no ``eval``); ``cluster_mean(...)`` calls are first
   replaced by placeholder names whose values are computed here;
5. rows missing on every analysis variable are dropped (``n_dropped``, reported);
6. cluster indices are built; BETWEEN variables are checked to be constant within their
   clusters, and rows missing such a variable get the value observed in their cluster;
7. categorical variables are recoded to ``0..K-1``;
8. centering: GRANDMEAN subtracts the mean over all non-missing rows (so, as in Mplus,
   a between variable's grand mean weights clusters by their size), GROUPMEAN the mean of
   the row's level-2 cluster (not for BETWEEN variables, nor in cross-classified models).

Rows in messages are 1-based positions in the DataFrame (``Data.row_numbers`` maps the
kept observations back to them).

Levels and cluster positions. Level 1 is the observation. ``Data.cluster_index`` has one
entry per cluster variable, in the reverse of the Mplus CLUSTER order (``CLUSTER = level3
level2`` gives positions 0 = level2, 1 = level3). Nested models: position ``k - 2`` is
level ``k``. A cross-classified model has 2 levels, and both of its crossed factors are
level-2 classifications (positions 0 and 1, neither nested in the other); its
``between_levels`` values 2 and 3 name the factor at position 0 and 1 (the last and the
first variable on CLUSTER), as in a three-level model.
"""
from __future__ import annotations

import difflib
import numbers
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import pandas as pd

from jaxsem.errors import DataError, ModelSyntaxError
from jaxsem.syntax.expressions import (ALLOWED_FUNCTIONS, Expr, evaluate,
                                       parse_expression)

#: Mplus's limit on the number of categories of a CATEGORICAL variable.
MAX_CATEGORIES = 10

#: Tokens read as missing by :func:`read_text_data` unless told otherwise.
DEFAULT_MISSING_TOKENS = (".", "*")

_MISSING_SYMBOLS = frozenset(DEFAULT_MISSING_TOKENS)
_CENTERING_KINDS = ("grandmean", "groupmean")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eEdD][+-]?\d+)?")
_FIELD_SEPARATOR = re.compile(r"\s*,\s*|\s+")
_EMPTY_FIELD = re.compile(r"^[ \t]*,|,[ \t]*,|,[ \t\r]*$", re.MULTILINE)
_BLANK_BYTE = np.zeros(256, bool)
_BLANK_BYTE[list(b" \t\r\n")] = True
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_CLUSTER_MEAN_CALL = re.compile(
    r"(?<![A-Za-z0-9_.])cluster_mean\s*\(\s*(?P<variable>[A-Za-z_][A-Za-z0-9_.]*)\s*"
    r"(?:,\s*(?P<cluster>[A-Za-z_][A-Za-z0-9_.]*)\s*)?\)", re.IGNORECASE)
_CLUSTER_MEAN_WORD = re.compile(r"(?<![A-Za-z0-9_.])cluster_mean\s*\(", re.IGNORECASE)


# ----------------------------------------------------------------------------- roles

@dataclass(frozen=True)
class Roles:
    """What the VARIABLE command says about each variable.

    ``clusters``: cluster variables, highest level first (Mplus ``CLUSTER = level3
    level2``); ``()`` for a single-level model; at most two.
    ``crossed``: the two cluster variables are crossed (CROSSCLASSIFIED), not nested.
    ``within``: varies and is modelled only at level 1.
    ``between``: no level-1 part: constant within level-2 clusters. In a three-level model
    a plain BETWEEN variable varies at levels 2 and 3; in a cross-classified model it is
    modelled on both crossed factors and must be constant within each cell (pair of
    clusters).
    ``between_levels``: variable -> 2 or 3, Mplus ``BETWEEN = (level2) w2 (level3) w3``;
    the variable is constant within the clusters of that level (cross-classified: of the
    factor at cluster position ``level - 2``, see the module docstring). A variable here
    is a BETWEEN variable whether or not it is given on ``between``: Roles adds it to
    ``between`` (after the names given there).
    ``categorical``: recoded to ``0..K-1``; at most ``max_categories`` categories
    (Mplus's limit, 10, unless raised here).
    ``usevariables``: Mplus USEVARIABLES; when given, every analysis variable must be on
    it. ``None``: all analysis variables.
    ``missing``: variable (or ``"ALL"``) -> missing-value codes: numbers, ``"."``, ``"*"``.
    ``centering``: variable -> ``"grandmean"`` or ``"groupmean"``.
    ``define``: ``(new name, expression)`` DEFINE transforms, applied in order.
    Expressions use ``+ - * / **``, numbers, variables, the functions of
    :data:`jaxsem.syntax.expressions.ALLOWED_FUNCTIONS` and ``cluster_mean(x)``: the mean
    of ``x`` over the row's level-2 cluster ignoring missing values
    (``cluster_mean(x, c)``: over the clusters of cluster variable ``c``; a
    cross-classified model must name ``c``).
    """
    clusters: tuple[str, ...] = ()
    crossed: bool = False
    within: tuple[str, ...] = ()
    between: tuple[str, ...] = ()
    between_levels: Mapping[str, int] = field(default_factory=dict)
    categorical: tuple[str, ...] = ()
    usevariables: tuple[str, ...] | None = None
    missing: Mapping[str, tuple] = field(default_factory=dict)
    centering: Mapping[str, str] = field(default_factory=dict)
    define: tuple[tuple[str, str], ...] = ()
    max_categories: int = MAX_CATEGORIES

    def __post_init__(self):
        for name in ("clusters", "within", "between", "categorical"):
            object.__setattr__(self, name, _name_tuple(getattr(self, name), f"Roles.{name}"))
        if self.usevariables is not None:
            object.__setattr__(self, "usevariables",
                               _name_tuple(self.usevariables, "Roles.usevariables"))
        for name in ("between_levels", "missing", "centering"):
            value = getattr(self, name)
            if not isinstance(value, Mapping):
                raise DataError(f"Roles.{name} must be a mapping variable -> value, "
                                f"not {type(value).__name__}")
            _name_tuple(tuple(value), f"Roles.{name}")
            object.__setattr__(self, name, MappingProxyType(dict(value)))
        # A between_levels variable is a BETWEEN variable: list it on ``between`` too, so
        # that every reader of the roles sees it there (one place, not one per reader).
        missing_between = tuple(name for name in self.between_levels
                                if name not in self.between)
        if missing_between:
            object.__setattr__(self, "between", self.between + missing_between)
        pairs = tuple(self.define)
        for pair in pairs:
            if (not isinstance(pair, (tuple, list)) or len(pair) != 2
                    or not all(isinstance(part, str) for part in pair)):
                raise DataError(f"Roles.define entries are (new name, expression text) "
                                f"pairs of strings; got {pair!r}")
        object.__setattr__(self, "define", tuple(tuple(pair) for pair in pairs))
        if isinstance(self.max_categories, bool) or not isinstance(self.max_categories, int) \
                or self.max_categories < 2:
            raise DataError(f"Roles.max_categories must be an integer of at least 2, "
                            f"not {self.max_categories!r}")


def _name_tuple(value, what: str) -> tuple[str, ...]:
    """``value`` as a tuple of names; a single string is one name."""
    names = (value,) if isinstance(value, str) else tuple(value)
    for name in names:
        if not isinstance(name, str):
            raise DataError(f"{what} must hold variable names (strings); got {name!r}")
    return names


# ----------------------------------------------------------------------------- data

@dataclass(frozen=True, eq=False)
class Centering:
    """How one variable was centered.

    ``kind``: ``"grandmean"`` or ``"groupmean"``. ``center``: the grand mean subtracted
    (a float), or for groupmean the level-2 cluster means, shape ``(n_level2_clusters,)``,
    NaN for a cluster where the variable is never observed.
    """
    kind: str
    center: float | np.ndarray


@dataclass(frozen=True, eq=False)
class Data:
    """Analysis data as numeric arrays (read-only numpy arrays).

    ``names``: the analysis variables, in the order given to :func:`prepare_data`.
    ``values``: ``(n_obs, n_vars)`` float64, NaN where missing; categorical variables hold
    codes ``0..K-1``. ``missing``: ``(n_obs, n_vars)`` bool.
    ``levels``: 1, 2 or 3; a cross-classified model has 2 (``crossed`` is True).
    ``cluster_names``: the cluster variable at each cluster position, the reverse of
    ``Roles.clusters`` (nested: lowest level first, position ``k - 2`` is level ``k``;
    crossed: two level-2 factors).
    ``cluster_index``: per position, ``(n_obs,)`` int32 codes ``0..n_clusters-1`` in order
    of first appearance in the data. In a three-level model a level-2 cluster is a
    (level-3 id, level-2 id) pair: the same level-2 id under two level-3 ids is two
    clusters. Crossed: two independent indices, no nesting.
    ``cluster_ids``: per position, ``(n_clusters,)`` original ids (int64 for whole
    numbers, float64 or object otherwise); a three-level model's level-2 entry holds the
    level-2 id only, which with ``parent_index`` identifies the cluster.
    ``cluster_sizes``: per position, ``(n_clusters,)`` int64 numbers of observations.
    ``parent_index``: three-level nested models only, ``(n_level2_clusters,)`` int32
    index of each level-2 cluster's level-3 cluster; ``None`` otherwise.
    ``variable_levels``: variable -> frozenset of the levels at which it varies and is
    modelled: not on WITHIN/BETWEEN all levels, WITHIN ``{1}``, BETWEEN all levels but 1,
    ``between_levels`` its level (crossed: ``{2}``).
    ``constant_within``: BETWEEN variable -> the cluster position whose clusters it is
    constant within (checked; rows missing it were given the cluster's value). A plain
    BETWEEN variable of a cross-classified model is constant only within cells and has
    no entry. ``categories``: categorical variable -> sorted original category values;
    code ``k`` in ``values`` stands for ``categories[name][k]``.
    ``centering``: variable -> :class:`Centering`.
    ``row_numbers``: ``(n_obs,)`` int64 1-based row of each observation in the input.
    ``n_dropped``: rows dropped because every analysis variable is missing.
    ``report``: one line per thing done to the data.
    """
    names: tuple[str, ...]
    values: np.ndarray
    missing: np.ndarray
    levels: int
    crossed: bool
    cluster_names: tuple[str, ...]
    cluster_index: tuple[np.ndarray, ...]
    cluster_ids: tuple[np.ndarray, ...]
    cluster_sizes: tuple[np.ndarray, ...]
    parent_index: np.ndarray | None
    variable_levels: Mapping[str, frozenset[int]]
    constant_within: Mapping[str, int]
    categories: Mapping[str, tuple]
    centering: Mapping[str, Centering]
    row_numbers: np.ndarray
    n_dropped: int
    report: str

    @property
    def n_obs(self) -> int:
        return self.values.shape[0]

    @property
    def n_clusters(self) -> tuple[int, ...]:
        """Number of clusters at each cluster position."""
        return tuple(len(ids) for ids in self.cluster_ids)

    def column(self, name: str) -> np.ndarray:
        """``(n_obs,)`` values of one analysis variable."""
        return self.values[:, self._position(name)]

    def cluster_values(self, name: str) -> np.ndarray:
        """``(n_clusters,)`` value of a BETWEEN variable per cluster of its position.

        The position is ``constant_within[name]``; NaN for a cluster where the variable
        is missing in every row.
        """
        known = self.names[self._position(name)]
        if known not in self.constant_within:
            where = ("it is constant only within cells of the crossed clusters; give its "
                     "cluster with between_levels" if 1 not in self.variable_levels[known]
                     else "it varies within clusters; put it on BETWEEN to treat it as a "
                     "cluster value")
            raise DataError(f"'{name}' has no single value per cluster: {where}.")
        position = self.constant_within[known]
        index = self.cluster_index[position]
        column = self.column(name)
        observed = ~np.isnan(column)
        per_cluster = np.full(len(self.cluster_ids[position]), np.nan)
        per_cluster[index[observed]] = column[observed]
        return per_cluster

    def summary(self) -> str:
        """A short printable description: observations, clusters, missing, recoding."""
        return _format_summary(self)

    def _position(self, name: str) -> int:
        match = _match(name, self.names)
        if match is None:
            raise DataError(f"'{name}' is not an analysis variable."
                            f"{_close_matches(name, self.names)}")
        return self.names.index(match)


# ----------------------------------------------------------------------------- text files

def read_text_data(path: str | os.PathLike, names: Sequence[str], *,
                   missing_codes=DEFAULT_MISSING_TOKENS) -> pd.DataFrame:
    """Read a free-format numeric data file into a DataFrame with columns ``names``.

    One record per line; fields separated by blanks, tabs and/or commas. Handles CRLF
    line ends, a UTF-8 byte-order mark and trailing blanks; blank lines are skipped.
    ``missing_codes``: tokens read as NaN, strings (``"."``, ``"*"``) or numbers
    (compared numerically, so ``-99`` also matches ``-99.0``). Numbers may use a Fortran
    ``D`` exponent. Returns ``(n_rows, len(names))`` float64 columns.
    """
    names = _check_names(names)
    symbols, codes = _split_codes(missing_codes, "read_text_data missing_codes")
    text = _read_text(path)
    values = _read_plain_numbers(text, len(names), symbols)
    if values is None:
        values = _read_token_by_token(text, names, symbols, path)
    values[np.isin(values, list(codes))] = np.nan
    return pd.DataFrame(values, columns=list(names))


def _read_plain_numbers(text: str, n_fields: int, symbols: frozenset[str]) -> np.ndarray | None:
    """Fast path of :func:`read_text_data`: ``(n_rows, n_fields)`` values, NaN for symbols.

    None when any row needs :func:`_read_token_by_token` (which finds and reports the
    problem): an empty field, a row with another number of fields, a token numpy cannot
    read (``1D2`` included), ``nan``/``inf``/``1_0`` tokens, line ends other than LF/CRLF.
    """
    if "_" in text or _EMPTY_FIELD.search(text):
        return None
    data = text.replace(",", " ").encode("utf-8")
    byte_values = np.frombuffer(data, np.uint8)
    blank = _BLANK_BYTE[byte_values]
    token_starts = np.flatnonzero(~blank[1:] & blank[:-1]) + 1
    if byte_values.size and not blank[0]:
        token_starts = np.concatenate(([0], token_starts))
    line_ends = np.flatnonzero(byte_values == ord("\n"))
    fields_per_line = np.bincount(np.searchsorted(line_ends, token_starts))
    fields_per_line = fields_per_line[fields_per_line > 0]
    tokens = np.array(data.split())
    if (not fields_per_line.size or np.any(fields_per_line != n_fields)
            or tokens.size != fields_per_line.size * n_fields):
        return None
    is_symbol = np.isin(tokens, [symbol.encode() for symbol in symbols])
    tokens[is_symbol] = b"0"
    try:
        values = tokens.astype(np.float64)
    except ValueError:
        return None
    if not np.all(np.isfinite(values)):
        return None
    values[is_symbol] = np.nan
    return values.reshape(-1, n_fields)


def _read_token_by_token(text: str, names: tuple[str, ...], symbols: frozenset[str],
                         path) -> np.ndarray:
    """Careful path of :func:`read_text_data`; raises a located DataError for bad input."""
    places, rows = [], []
    for line_number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        place = _row_place(len(rows) + 1, line_number)
        fields = _FIELD_SEPARATOR.split(stripped)
        if len(fields) != len(names):
            raise DataError(
                f"{path}, {place}: found {len(fields)} fields but NAMES gives "
                f"{len(names)} variables ({_shorten(names)}). Each row must hold one value "
                "per name; check the separators and the NAMES list.")
        if "" in fields:
            column = fields.index("")
            raise DataError(
                f"{path}, {place}: field {column + 1} ({names[column]}) is empty "
                "between two commas. Free format needs a value there; write a missing-value "
                "code such as '.'.")
        places.append(place)
        rows.append(fields)
    if not rows:
        raise DataError(f"{path} holds no data rows; check the file name.")
    tokens = np.asarray(rows, dtype=str)
    unique_tokens, inverse = np.unique(tokens, return_inverse=True)
    parsed = np.array([_parse_number(token) for token in unique_tokens], dtype=float)
    not_numbers = np.isnan(parsed) & ~np.isin(unique_tokens, list(symbols))
    if not_numbers.any():
        row, column = map(int, np.argwhere(np.isin(tokens, unique_tokens[not_numbers]))[0])
        token = str(tokens[row, column])
        raise DataError(
            f"{path}, {places[row]}, column {column + 1} ({names[column]}): "
            f"{token!r} is not a number. Fix the file, or declare {token!r} a "
            "missing-value code.")
    return parsed[inverse.reshape(tokens.shape)]


def _row_place(row: int, line: int) -> str:
    """'row 4', with the file line when blank lines make them differ."""
    return f"row {row}" if row == line else f"row {row} (line {line} of the file)"


def _read_text(path) -> str:
    """File contents with a UTF-8 byte-order mark removed."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise DataError(f"data file not found: {path} (looked in "
                        f"{os.path.abspath(path)}); check the FILE name.") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a folder, not a data file; give the file's name.") from None
    except OSError as exc:
        raise DataError(f"cannot read data file {path}: {exc.strerror}.") from None
    return raw.decode("utf-8-sig", errors="replace")


def _check_names(names: Sequence[str]) -> tuple[str, ...]:
    """NAMES as a tuple; none empty, none repeated (case-insensitive, as in Mplus)."""
    names = _name_tuple(names, "NAMES")
    if not names:
        raise DataError("NAMES is empty: give one name per column of the data file.")
    seen: dict[str, str] = {}
    for name in names:
        if name.casefold() in seen:
            raise DataError(f"NAMES lists '{name}' twice (also as '{seen[name.casefold()]}'); "
                            "give each column its own name.")
        seen[name.casefold()] = name
    return names


def _parse_number(token: str) -> float | None:
    """The value of a numeric token (Fortran ``D`` exponent allowed), else None."""
    if not _NUMBER.fullmatch(token):
        return None
    return float(token.replace("d", "e").replace("D", "e"))


def _split_codes(codes, where: str) -> tuple[frozenset[str], frozenset[float]]:
    """Missing-value codes as (symbols among ``.`` ``*``, numbers)."""
    if isinstance(codes, (str, numbers.Number)):
        codes = (codes,)
    symbols, values = set(), set()
    for code in codes:
        number = _parse_number(code.strip()) if isinstance(code, str) else None
        if isinstance(code, str) and code.strip() in _MISSING_SYMBOLS:
            symbols.add(code.strip())
        elif number is not None:
            values.add(number)
        elif isinstance(code, numbers.Real) and not isinstance(code, bool) \
                and np.isfinite(code):
            values.add(float(code))
        else:
            raise DataError(f"{where}: missing-value code {code!r} is not a number, "
                            "'.' or '*'; use one of those.")
    return frozenset(symbols), frozenset(values)


# ----------------------------------------------------------------------------- prepare

def prepare_data(frame: pd.DataFrame, variables: Sequence[str], roles: Roles) -> Data:
    """Numeric arrays with roles for the analysis ``variables`` of ``frame``.

    See the module docstring for the steps; raises :class:`DataError` for bad input.
    """
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"prepare_data needs a pandas DataFrame, not {type(frame).__name__}; "
                        "read a text file with read_text_data.")
    if not isinstance(roles, Roles):
        raise DataError(f"prepare_data needs a Roles object, not {type(roles).__name__}.")
    if len(frame) == 0:
        raise DataError("the data have no rows.")
    variables = _name_tuple(variables, "the analysis variables")
    if not variables:
        raise DataError("no analysis variables: name at least one variable to analyse.")
    report: list[str] = []
    columns = _frame_columns(frame)
    spec = _resolve_names(columns, variables, roles, report)
    raw = _apply_missing_codes(frame, columns, spec, report)
    clusters = _read_clusters(frame, columns, spec)
    _run_define(spec, raw, clusters, len(frame), report)
    values = np.column_stack([raw[spec.canonical[name]] for name in variables])
    _check_not_all_missing(values, spec)

    kept = ~np.isnan(values).all(axis=1)
    row_numbers = np.flatnonzero(kept) + 1
    n_dropped = int((~kept).sum())
    if n_dropped:
        report.append(f"dropped {n_dropped} row(s) missing on every analysis variable "
                      f"({_rows_text(np.flatnonzero(~kept) + 1)})")
    values = values[kept]
    clusters = clusters.subset(kept)

    variable_levels = _variable_levels(spec, clusters)
    constant_within = _constant_within(spec)
    _check_and_fill_between(values, spec, constant_within, clusters, report)
    categories = _recode_categorical(values, spec, roles, row_numbers, report)
    centering = _center(values, spec, variable_levels, clusters, report)

    missing = np.isnan(values)
    for array in (values, missing, row_numbers, *clusters.index, *clusters.ids, *clusters.sizes):
        array.setflags(write=False)
    if clusters.parent is not None:
        clusters.parent.setflags(write=False)
    return Data(
        names=variables, values=values, missing=missing, levels=clusters.levels,
        crossed=roles.crossed, cluster_names=clusters.names, cluster_index=clusters.index,
        cluster_ids=clusters.ids, cluster_sizes=clusters.sizes,
        parent_index=clusters.parent,
        variable_levels=MappingProxyType(variable_levels),
        constant_within=MappingProxyType(constant_within),
        categories=MappingProxyType(categories), centering=MappingProxyType(centering),
        row_numbers=row_numbers, n_dropped=n_dropped, report="\n".join(report))


# ----------------------------------------------------------------------------- names

def _frame_columns(frame: pd.DataFrame) -> dict[str, object]:
    """Column name as text -> the frame's column label; repeated names are an error."""
    columns: dict[str, object] = {}
    for label in frame.columns:
        name = str(label)
        if name in columns:
            raise DataError(f"the data have two columns named '{name}'; rename one.")
        columns[name] = label
    return columns


def _match(name: str, candidates: Sequence[str]) -> str | None:
    """The candidate spelled ``name``: exact, else the only case-insensitive match."""
    if name in candidates:
        return name
    folded = [c for c in candidates if c.casefold() == name.casefold()]
    return folded[0] if len(folded) == 1 else None


def _close_matches(name: str, candidates: Sequence[str]) -> str:
    """' Close matches: a, b.' (difflib, case-insensitive) or ''."""
    by_folded = {c.casefold(): c for c in candidates}
    hits = difflib.get_close_matches(name.casefold(), list(by_folded), n=3, cutoff=0.6)
    return f" Close matches: {', '.join(by_folded[h] for h in hits)}." if hits else ""


def _not_in_data(name: str, where: str, known: Sequence[str]) -> DataError:
    listing = f" The data have: {_shorten(known, 15)}." if known else ""
    return DataError(f"{where}: '{name}' is not a variable in the data."
                     f"{_close_matches(name, known)}{listing} Check the spelling and NAMES.")


@dataclass(frozen=True)
class _Definition:
    """One DEFINE transform with its names resolved to data names.

    ``inputs``: name in the expression -> data name; ``means``: cluster_mean placeholder
    in the expression -> (data name of the variable, cluster variable as written or None).
    """
    target: str
    text: str
    expr: Expr
    inputs: dict[str, str]
    means: dict[str, tuple[str, str | None]]

    @property
    def where(self) -> str:
        return f"DEFINE {self.target} = {self.text}"


@dataclass
class _Spec:
    """Names resolved to the spelling of the data (``canonical``: analysis name -> data name).

    Role sets hold analysis-variable names as given in ``variables``; ``missing``: data
    name or ``"ALL"`` -> (symbols, numbers); ``needed``: data columns to read as numbers.
    """
    variables: tuple[str, ...]
    canonical: dict[str, str]
    clusters: tuple[str, ...]
    crossed: bool
    within: set[str]
    between: set[str]
    between_levels: dict[str, int]
    categorical: set[str]
    centering: dict[str, str]
    missing: dict[str, tuple[frozenset[str], frozenset[float]]]
    definitions: list[_Definition]
    needed: set[str]


def _resolve_names(columns: Mapping[str, object], variables: tuple[str, ...], roles: Roles,
                   report: list[str]) -> _Spec:
    """Check every name against the data and the roles against one another."""
    data_names = list(columns)
    definitions, needed = [], set()
    for new_name, text in roles.define:
        new_name = new_name.strip()
        where = f"DEFINE {new_name} = {text}"
        if not _NAME.fullmatch(new_name):
            raise DataError(f"DEFINE: '{new_name}' is not a valid variable name; start with a "
                            "letter and use letters, digits and '_'.")
        expr, placeholders = _parse_define(where, text)

        def data_name(name: str) -> str:
            found = _match(name, data_names)
            if found is None:
                raise _not_in_data(name, where, data_names)
            if found in columns:
                needed.add(found)
            return found

        inputs = {name: data_name(name) for name in sorted(expr.names() - placeholders.keys())}
        means = {placeholder: (data_name(variable), cluster)
                 for placeholder, (variable, cluster) in placeholders.items()}
        target = _match(new_name, data_names) or new_name
        if target not in data_names:
            data_names.append(target)
        definitions.append(_Definition(target, text, expr, inputs, means))

    def in_data(name: str, where: str) -> str:
        found = _match(name, data_names)
        if found is None:
            raise _not_in_data(name, where, data_names)
        return found

    canonical: dict[str, str] = {}
    for name in variables:
        found = in_data(name, "analysis variable")
        if found in canonical.values():
            first = next(v for v, c in canonical.items() if c == found)
            raise DataError(f"analysis variable '{name}' is listed twice (also as '{first}'); "
                            "list it once.")
        canonical[name] = found
    by_data_name = {data_name: name for name, data_name in canonical.items()}

    def analysis(name: str, where: str) -> str:
        found = in_data(name, where)
        if found not in by_data_name:
            raise DataError(f"{where}: '{name}' is in the data but not an analysis variable "
                            f"({_shorten(variables)}); add it to USEVARIABLES and the model, "
                            f"or remove it from {where}.")
        return by_data_name[found]

    cluster_names = tuple(in_data(name, "CLUSTER") for name in roles.clusters)
    for name in cluster_names:
        if name not in columns:
            raise DataError(f"CLUSTER: '{name}' is made by DEFINE; a cluster variable must "
                            "come from the data.")
        if name in by_data_name:
            raise DataError(f"cluster variable '{name}' is also listed as an analysis "
                            "variable; remove it from USEVARIABLES and the model (it only "
                            "says which cluster each row belongs to).")
    _check_cluster_count(cluster_names, roles)
    for definition in definitions:
        if definition.target in cluster_names:
            raise DataError(f"DEFINE changes the cluster variable '{definition.target}'; give "
                            "the new variable another name.")

    within = {analysis(n, "WITHIN") for n in roles.within}
    between = {analysis(n, "BETWEEN") for n in roles.between}
    between_levels = {analysis(n, "BETWEEN"): level for n, level in roles.between_levels.items()}
    categorical = {analysis(n, "CATEGORICAL") for n in roles.categorical}
    centering = {analysis(n, "CENTERING"): kind for n, kind in roles.centering.items()}
    missing = {}
    for key, codes in roles.missing.items():
        found = "ALL" if key.upper() == "ALL" else _match(key, list(columns))
        if found is None:
            raise _not_in_data(key, "MISSING", list(columns))
        missing[found] = _split_codes(codes, f"MISSING for {key}")

    if roles.usevariables is not None:
        use = [in_data(name, "USEVARIABLES") for name in roles.usevariables]
        if not use:
            raise DataError("USEVARIABLES is empty: list the variables to analyse.")
        absent = [name for name in variables if canonical[name] not in use]
        if absent:
            raise DataError(f"analysis variable(s) {_shorten(absent)} not on USEVARIABLES; "
                            "add them to USEVARIABLES or drop them from the model.")
        unused = [name for name in use if name not in by_data_name and name not in cluster_names]
        if unused:
            report.append(f"on USEVARIABLES but not used in the model: {_shorten(unused)}")

    targets = {definition.target for definition in definitions}
    needed |= {name for name in canonical.values() if name in columns and name not in targets}
    spec = _Spec(variables, canonical, cluster_names, roles.crossed, within, between,
                 between_levels, categorical, centering, missing, definitions, needed)
    _check_role_conflicts(spec)
    return spec


def _check_cluster_count(cluster_names: tuple[str, ...], roles: Roles) -> None:
    if len(cluster_names) > 2:
        raise DataError(f"CLUSTER lists {len(cluster_names)} variables "
                        f"({', '.join(cluster_names)}); at most two are supported "
                        "(three levels, or two crossed factors).")
    if len(set(cluster_names)) < len(cluster_names):
        raise DataError(f"CLUSTER lists '{cluster_names[0]}' twice; list each cluster "
                        "variable once.")
    if roles.crossed and len(cluster_names) != 2:
        raise DataError("CROSSCLASSIFIED needs exactly two cluster variables on CLUSTER; "
                        f"found {len(cluster_names)}.")


def _check_role_conflicts(spec: _Spec) -> None:
    """WITHIN/BETWEEN overlaps, levels that do not exist, bad centering kinds."""
    highest = 1 + len(spec.clusters)   # highest level number a BETWEEN level may name
    both = sorted(spec.within & spec.between)
    if both:
        raise DataError(f"'{both[0]}' is on both WITHIN and BETWEEN; a variable is modelled "
                        "at level 1 only (WITHIN) or at the cluster level only (BETWEEN): "
                        "keep one.")
    if highest == 1 and (spec.within or spec.between):
        raise DataError("WITHIN and BETWEEN need a multilevel model: name the cluster "
                        "variable(s) on CLUSTER, or remove WITHIN/BETWEEN.")
    for name, level in list(spec.between_levels.items()):
        if isinstance(level, bool) or level not in (2, 3):
            raise DataError(f"BETWEEN level of '{name}' must be 2 or 3, not {level!r}.")
        if level > highest:
            raise DataError(f"'{name}' is on BETWEEN at level {level} but the model has "
                            f"{highest} levels (CLUSTER = {' '.join(spec.clusters)}); use "
                            "level 2 or a plain BETWEEN.")
        spec.between_levels[name] = int(level)
    for name, kind in spec.centering.items():
        if not isinstance(kind, str) or kind.lower() not in _CENTERING_KINDS:
            raise DataError(f"CENTERING of '{name}' is {kind!r}; use GRANDMEAN or GROUPMEAN.")
        if name in spec.categorical:
            raise DataError(f"'{name}' is categorical and cannot be centered; remove it from "
                            "CENTERING (or from CATEGORICAL to treat it as continuous).")


# ----------------------------------------------------------------------------- values

def _apply_missing_codes(frame: pd.DataFrame, columns: Mapping[str, object], spec: _Spec,
                         report: list[str]) -> dict[str, np.ndarray]:
    """Data name -> ``(n_rows,)`` float64 with missing codes as NaN, for needed columns."""
    raw = {}
    for name in [name for name in columns if name in spec.needed]:
        symbols, codes = _codes_for(name, spec)
        series = frame[columns[name]]
        values, n_coded = _numeric_column(series, name, symbols, codes)
        if n_coded:
            report.append(f"missing codes: {n_coded} value(s) of {name} set to missing")
        raw[name] = values
    return raw


def _codes_for(name: str, spec: _Spec) -> tuple[frozenset[str], frozenset[float]]:
    """Missing codes of one data column: its own plus those for ALL."""
    symbols, codes = frozenset(), frozenset()
    for key in ("ALL", name):
        if key in spec.missing:
            symbols, codes = symbols | spec.missing[key][0], codes | spec.missing[key][1]
    return symbols, codes


def _numeric_column(series: pd.Series, name: str, symbols: frozenset[str],
                    codes: frozenset[float]) -> tuple[np.ndarray, int]:
    """``(n_rows,)`` float64 of one column and how many values a missing code removed."""
    if pd.api.types.is_bool_dtype(series) or (
            pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_complex_dtype(series)):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
        n_symbols = 0
    else:
        values, n_symbols = _parse_objects(series.to_numpy(dtype=object), name, symbols)
    coded = np.isin(values, list(codes)) if codes else np.zeros(len(values), bool)
    values[coded] = np.nan
    infinite = np.flatnonzero(np.isinf(values))
    if infinite.size:
        raise DataError(f"variable '{name}' has infinite values ({_rows_text(infinite + 1)}); "
                        "replace them by numbers or a missing-value code.")
    return values, n_symbols + int(coded.sum())


def _parse_objects(cells: np.ndarray, name: str, symbols: frozenset[str]) -> tuple[np.ndarray, int]:
    """Numbers from a column of Python objects (text, numbers, None)."""
    values = np.empty(len(cells))
    n_symbols = 0
    for row, cell in enumerate(cells):
        if isinstance(cell, numbers.Real):
            values[row] = float(cell)
            continue
        if cell is None or cell is pd.NA:
            values[row] = np.nan
            continue
        token = cell.strip() if isinstance(cell, str) else None
        number = _parse_number(token) if token is not None else None
        if token in symbols or token == "":
            values[row] = np.nan
            n_symbols += token != ""
        elif number is not None:
            values[row] = number
        else:
            hint = (f"declare it a missing-value code (MISSING = {token})"
                    if token in _MISSING_SYMBOLS else
                    "fix the data or declare it a missing-value code")
            raise DataError(f"variable '{name}', row {row + 1}: {cell!r} is not a number; "
                            f"{hint}.")
    return values, n_symbols


def _check_not_all_missing(values: np.ndarray, spec: _Spec) -> None:
    """An analysis variable missing in every row is an error."""
    for j, name in enumerate(spec.variables):
        if np.isnan(values[:, j]).all():
            symbols, codes = _codes_for(spec.canonical[name], spec)
            listed = sorted(symbols) + [_format_value(code) for code in sorted(codes)]
            detail = f" after the missing codes {', '.join(listed)}" if listed else ""
            raise DataError(f"variable '{name}' is missing in all {len(values)} rows{detail}; "
                            "check the MISSING codes and the data, or drop the variable.")


# ----------------------------------------------------------------------------- clusters

@dataclass(frozen=True)
class _Clusters:
    """Cluster structure, lowest level first (see :class:`Data` for the fields)."""
    names: tuple[str, ...]
    crossed: bool
    raw_ids: tuple[np.ndarray, ...]
    index: tuple[np.ndarray, ...]
    ids: tuple[np.ndarray, ...]
    sizes: tuple[np.ndarray, ...]
    parent: np.ndarray | None

    @classmethod
    def build(cls, names: tuple[str, ...], raw_ids: tuple[np.ndarray, ...],
              crossed: bool) -> _Clusters:
        """From per-row ids ``raw_ids`` (one ``(n_rows,)`` array per level, lowest first)."""
        index, ids, parent = [], [], None
        if len(names) == 2 and not crossed:
            top_codes, top_ids = pd.factorize(raw_ids[1])
            low_codes, low_ids = pd.factorize(raw_ids[0])
            pair_codes, pairs = pd.factorize(top_codes.astype(np.int64) * len(low_ids) + low_codes)
            index = [pair_codes, top_codes]
            ids = [np.asarray(low_ids)[pairs % len(low_ids)], np.asarray(top_ids)]
            parent = (pairs // len(low_ids)).astype(np.int32)
        else:
            for raw in raw_ids:
                codes, uniques = pd.factorize(raw)
                index.append(codes)
                ids.append(np.asarray(uniques))
        index = tuple(codes.astype(np.int32) for codes in index)
        sizes = tuple(np.bincount(codes, minlength=len(level_ids)).astype(np.int64)
                      for codes, level_ids in zip(index, ids))
        return cls(names, crossed, raw_ids, index, tuple(ids), sizes, parent)

    @property
    def levels(self) -> int:
        return 2 if self.crossed else 1 + len(self.names)

    def subset(self, rows: np.ndarray) -> _Clusters:
        """The structure of the rows selected by the bool mask ``rows``."""
        return _Clusters.build(self.names, tuple(raw[rows] for raw in self.raw_ids),
                               self.crossed)

    def label(self, position: int, cluster: int) -> str:
        """How to name cluster ``cluster`` at cluster position ``position`` in a message."""
        return _cluster_label(self.names, self.ids, self.parent, position, cluster)

    def cells(self) -> tuple[np.ndarray, Callable[[int], str]]:
        """Crossed models: ``(n_rows,)`` codes of the (cluster, cluster) cells, and a
        function naming cell ``c`` in a message."""
        n_second = len(self.ids[1])
        codes, pairs = pd.factorize(self.index[0].astype(np.int64) * n_second + self.index[1])

        def label(cell: int) -> str:
            first, second = divmod(int(pairs[cell]), n_second)
            return f"cell ({self.label(0, first)}, {self.label(1, second)})"

        return codes, label


def _cluster_label(names: tuple[str, ...], ids: tuple[np.ndarray, ...],
                   parent: np.ndarray | None, position: int, cluster: int) -> str:
    """'class 3', or 'class 3 (in school 12)' for a level-2 cluster of a nested model."""
    text = f"{names[position]} {ids[position][cluster]}"
    if position == 0 and parent is not None:
        text += f" (in {names[1]} {ids[1][parent[cluster]]})"
    return text


def _read_clusters(frame: pd.DataFrame, columns: Mapping[str, object], spec: _Spec) -> _Clusters:
    """Cluster ids of every row; a missing id is an error."""
    names = tuple(reversed(spec.clusters))
    raw_ids = []
    for name in names:
        ids, missing = _cluster_ids(frame[columns[name]], *_codes_for(name, spec))
        if missing.any():
            rows = np.flatnonzero(missing) + 1
            raise DataError(f"cluster variable '{name}' is missing in {len(rows)} row(s) "
                            f"({_rows_text(rows)}). Every row needs a cluster id; fix the ids "
                            "or remove those rows from the data.")
        raw_ids.append(ids)
    return _Clusters.build(names, tuple(raw_ids), spec.crossed)


def _cluster_ids(series: pd.Series, symbols: frozenset[str],
                 codes: frozenset[float]) -> tuple[np.ndarray, np.ndarray]:
    """(ids, missing mask): numeric ids as int64 when all whole, text ids as strings."""
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        missing = np.isnan(values) | np.isin(values, list(codes))
        if np.all(values[~missing] == np.round(values[~missing])):
            values = np.where(missing, 0, values).astype(np.int64)
        return values, missing
    cells = series.to_numpy(dtype=object)
    text = np.array(["" if pd.isna(cell) else str(cell).strip() for cell in cells], dtype=object)
    numbers_in_text = np.array([_parse_number(t) if t else None for t in text], dtype=object)
    missing = np.array([t == "" or t in symbols or (v is not None and v in codes)
                        for t, v in zip(text, numbers_in_text)], dtype=bool)
    return text, missing


# ----------------------------------------------------------------------------- define

def _parse_define(where: str, text: str) -> tuple[Expr, dict[str, tuple[str, str | None]]]:
    """Parse one DEFINE expression.

    ``cluster_mean(x)`` / ``cluster_mean(x, c)`` calls are replaced by placeholder names
    of the same length (so error positions stay right) before the expression parser runs;
    returns the expression and placeholder -> (variable, cluster variable or None).
    """
    placeholders: dict[str, tuple[str, str | None]] = {}

    def replace(match: re.Match) -> str:
        placeholder = f"_cm{len(placeholders)}_".ljust(len(match.group()), "_")
        placeholders[placeholder] = (match.group("variable"), match.group("cluster"))
        return placeholder

    rewritten = _CLUSTER_MEAN_CALL.sub(replace, text)
    leftover = _CLUSTER_MEAN_WORD.search(rewritten)
    if leftover:
        raise DataError(f"{where}: cluster_mean takes a variable name, and optionally a "
                        "cluster variable: cluster_mean(x) or cluster_mean(x, school)."
                        f"\n    {text}\n    {' ' * leftover.start()}^")
    try:
        expr = parse_expression(rewritten, case_insensitive=False)
    except ModelSyntaxError as exc:
        message = str(exc).replace(rewritten, text).replace("a parameter label", "a variable")
        for placeholder in placeholders:
            message = message.replace(placeholder, "cluster_mean(...)")
        functions = ", ".join(ALLOWED_FUNCTIONS)
        message = message.replace(functions, f"{functions}, cluster_mean")
        raise DataError(f"{where}: {message}") from None
    return expr, placeholders


def _run_define(spec: _Spec, raw: dict[str, np.ndarray], clusters: _Clusters, n_rows: int,
                report: list[str]) -> None:
    """Evaluate the DEFINE transforms in order, adding/replacing columns of ``raw``.

    A result that is not finite (log of 0, division by 0) is missing.
    """
    for definition in spec.definitions:
        env = {name: raw[data_name] for name, data_name in definition.inputs.items()}
        for placeholder, (variable, cluster) in definition.means.items():
            env[placeholder] = _cluster_mean_column(raw[variable], cluster, clusters,
                                                    definition.where)
        with np.errstate(all="ignore"):
            result = np.asarray(evaluate(definition.expr, env, np), dtype=np.float64)
        result = np.broadcast_to(result, (n_rows,)).copy()
        inputs_observed = np.ones(n_rows, bool)
        for column in env.values():
            inputs_observed &= ~np.isnan(column)
        undefined = ~np.isfinite(result)
        result[undefined] = np.nan
        line = definition.where
        if (undefined & inputs_observed).any():
            rows = np.flatnonzero(undefined & inputs_observed) + 1
            line += f": undefined in {len(rows)} row(s) ({_rows_text(rows)}), set to missing"
        report.append(line)
        raw[definition.target] = result


def _cluster_mean_column(values: np.ndarray, cluster: str | None, clusters: _Clusters,
                         where: str) -> np.ndarray:
    """``(n_rows,)`` mean of ``values`` over each row's cluster, ignoring missing."""
    if not clusters.names:
        raise DataError(f"{where}: cluster_mean needs clusters; name the cluster variable "
                        "on CLUSTER.")
    if cluster is None:
        if clusters.crossed:
            raise DataError(f"{where}: in a cross-classified model say which cluster to "
                            f"average over: cluster_mean(x, {clusters.names[0]}) or "
                            f"cluster_mean(x, {clusters.names[1]}).")
        position = 0
    else:
        found = _match(cluster, clusters.names)
        if found is None:
            raise DataError(f"{where}: '{cluster}' is not a cluster variable; use one of "
                            f"{', '.join(clusters.names)}.")
        position = clusters.names.index(found)
    index = clusters.index[position]
    return _cluster_means(values, index, len(clusters.ids[position]))[index]


def _cluster_means(values: np.ndarray, index: np.ndarray, n_clusters: int) -> np.ndarray:
    """``(n_clusters,)`` mean of the non-missing ``values`` per cluster; NaN if none."""
    observed = ~np.isnan(values)
    sums = np.bincount(index[observed], weights=values[observed], minlength=n_clusters)
    counts = np.bincount(index[observed], minlength=n_clusters)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


# ----------------------------------------------------------------------------- roles -> arrays

def _variable_levels(spec: _Spec, clusters: _Clusters) -> dict[str, frozenset[int]]:
    """Variable -> levels at which it varies and is modelled (see :class:`Data`)."""
    all_levels = frozenset(range(1, clusters.levels + 1))
    levels = {}
    for name in spec.variables:
        if name in spec.within:
            levels[name] = frozenset({1})
        elif name in spec.between_levels and not spec.crossed:
            levels[name] = frozenset({spec.between_levels[name]})
        elif name in spec.between:
            levels[name] = all_levels - {1}
        else:
            levels[name] = all_levels
    return levels


def _constant_within(spec: _Spec) -> dict[str, int]:
    """BETWEEN variable -> cluster position it is constant within (see :class:`Data`)."""
    positions = {name: 0 for name in spec.between if not spec.crossed}
    positions.update({name: level - 2 for name, level in spec.between_levels.items()})
    return {name: positions[name] for name in spec.variables if name in positions}


def _check_and_fill_between(values: np.ndarray, spec: _Spec, constant_within: Mapping[str, int],
                            clusters: _Clusters, report: list[str]) -> None:
    """Every BETWEEN variable must be constant within its clusters (crossed, plain: cells).

    Rows missing it get the value observed elsewhere in their cluster (in place).
    """
    for j, name in enumerate(spec.variables):
        if name not in spec.between:
            continue
        if name in constant_within:
            position = constant_within[name]
            index = clusters.index[position]
            group = f"{clusters.names[position]} cluster"
            mean_call = (f"cluster_mean({name})" if position == 0 and not clusters.crossed
                         else f"cluster_mean({name}, {clusters.names[position]})")

            def label(cluster: int, position=position) -> str:
                return clusters.label(position, cluster)
        else:
            index, label = clusters.cells()
            group = f"cell of {clusters.names[0]} x {clusters.names[1]}"
            mean_call = f"cluster_mean({name}, {clusters.names[0]})"
        n_groups = int(index.max()) + 1
        column = values[:, j]
        observed = ~np.isnan(column)
        low = np.full(n_groups, np.inf)
        high = np.full(n_groups, -np.inf)
        np.minimum.at(low, index[observed], column[observed])
        np.maximum.at(high, index[observed], column[observed])
        has_value = np.isfinite(low)
        spread, scale = np.zeros(n_groups), np.ones(n_groups)
        spread[has_value] = high[has_value] - low[has_value]
        scale[has_value] = np.maximum(1.0, np.abs(high[has_value]))
        varying = np.flatnonzero(spread > 1e-12 * scale)
        if varying.size:
            first = varying[0]
            seen = np.unique(column[observed & (index == first)])
            raise DataError(
                f"'{name}' is on BETWEEN, so it must be constant within each {group}, but "
                f"it varies within {', '.join(label(c) for c in varying[:5])}"
                f"{f' and {varying.size - 5} more' if varying.size > 5 else ''}. "
                f"In {label(first)} it takes the values "
                f"{_shorten([_format_value(v) for v in seen], 6)}. Remove it from BETWEEN, or "
                f"put its cluster mean there (DEFINE: {name}_mean = {mean_call}).")
        fill = ~observed & has_value[index]
        if fill.any():
            column[fill] = low[index[fill]]
            report.append(f"{name}: filled {int(fill.sum())} missing row(s) with the value "
                          f"observed in their {group}")


def _recode_categorical(values: np.ndarray, spec: _Spec, roles: Roles,
                        row_numbers: np.ndarray, report: list[str]) -> dict[str, tuple]:
    """Recode categorical columns of ``values`` in place to 0..K-1; returns the maps."""
    categories = {}
    for j, name in enumerate(spec.variables):
        if name not in spec.categorical:
            continue
        column = values[:, j]
        observed = ~np.isnan(column)
        fractional = observed & (column != np.round(column))
        if fractional.any():
            rows = np.flatnonzero(fractional)
            raise DataError(
                f"categorical variable '{name}' has non-integer values "
                f"({_shorten([_format_value(v) for v in column[rows]], 5)} in "
                f"{_rows_text(row_numbers[rows])}); categories must be whole numbers. "
                f"Recode them, or remove '{name}' from CATEGORICAL.")
        observed_categories = np.unique(column[observed])
        if len(observed_categories) == 1:
            raise DataError(
                f"categorical variable '{name}' has a single observed category "
                f"({_format_value(observed_categories[0])}); it carries no information. "
                "Drop the variable from the analysis.")
        if len(observed_categories) > roles.max_categories:
            raise DataError(
                f"categorical variable '{name}' has {len(observed_categories)} categories "
                f"({_shorten([_format_value(v) for v in observed_categories], 12)}); at most "
                f"{roles.max_categories} are allowed. Treat it as continuous (remove it from "
                "CATEGORICAL), collapse categories, or raise max_categories.")
        column[observed] = np.searchsorted(observed_categories, column[observed])
        categories[name] = tuple(int(v) for v in observed_categories)
        report.append(f"recoded categorical {name}: " + ", ".join(
            f"{v} -> {k}" for k, v in enumerate(categories[name])))
    return categories


def _center(values: np.ndarray, spec: _Spec, variable_levels: Mapping[str, frozenset[int]],
            clusters: _Clusters, report: list[str]) -> dict[str, Centering]:
    """Center the columns named in CENTERING, in place."""
    centering = {}
    for j, name in enumerate(spec.variables):
        if name not in spec.centering:
            continue
        kind = spec.centering[name].lower()
        column = values[:, j]
        if kind == "grandmean":
            mean = float(np.nanmean(column))
            column -= mean
            centering[name] = Centering(kind, mean)
            report.append(f"centered {name} at its grand mean {mean:.6g}")
            continue
        if not clusters.names:
            raise DataError(f"GROUPMEAN centering of '{name}' needs clusters; name the "
                            "cluster variable on CLUSTER, or use GRANDMEAN.")
        if clusters.crossed:
            raise DataError(f"GROUPMEAN centering of '{name}' is ambiguous in a "
                            "cross-classified model (which cluster's mean?); define the "
                            f"centered variable instead, e.g. DEFINE: {name}_c = {name} - "
                            f"cluster_mean({name}, {clusters.names[0]}).")
        if 1 not in variable_levels[name]:
            raise DataError(f"'{name}' is a BETWEEN variable, so it is constant within "
                            "clusters and GROUPMEAN centering would make it zero; use "
                            "GRANDMEAN for it.")
        means = _cluster_means(column, clusters.index[0], len(clusters.ids[0]))
        column -= means[clusters.index[0]]
        means.setflags(write=False)
        centering[name] = Centering(kind, means)
        report.append(f"centered {name} at its group means ({clusters.names[0]} clusters)")
    return centering


# ----------------------------------------------------------------------------- text helpers

def _shorten(items: Sequence, limit: int = 8) -> str:
    """'a, b, c' with at most ``limit`` items, then '... (N in all)'."""
    items = [str(item) for item in items]
    if len(items) <= limit:
        return ", ".join(items)
    return f"{', '.join(items[:limit])}, ... ({len(items)} in all)"


def _rows_text(rows: Sequence[int], limit: int = 5) -> str:
    """'row 4' / 'rows 4, 9, 12' / 'rows 4, 9, 12, 20, 31 and 7 more' (1-based)."""
    rows = [int(row) for row in rows]
    shown = ", ".join(map(str, rows[:limit]))
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return f"row{'s' if len(rows) > 1 else ''} {shown}{more}"


def _format_value(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _format_summary(data: Data) -> str:
    """Text of :meth:`Data.summary`."""
    lines = [f"Observations: {data.n_obs}"
             + (f" ({data.n_dropped} row(s) dropped: missing on every analysis variable)"
                if data.n_dropped else "")]
    if data.levels > 1:
        design = "cross-classified" if data.crossed else "nested"
        lines.append(f"Levels: {data.levels} ({design})")
        for position, (name, sizes) in enumerate(zip(data.cluster_names, data.cluster_sizes)):
            where = "crossed factor" if data.crossed else f"level {position + 2}"
            lines.append(f"  {where}: {name}, {len(sizes)} clusters, size min "
                         f"{sizes.min()} / mean {sizes.mean():.1f} / max {sizes.max()}")
        if data.parent_index is not None:
            per_top = np.bincount(data.parent_index, minlength=len(data.cluster_ids[1]))
            lines.append(f"  {data.cluster_names[0]} clusters per {data.cluster_names[1]}: "
                         f"min {per_top.min()} / mean {per_top.mean():.1f} / max {per_top.max()}")
    lines.append("Variables (levels; missing):")
    width = max(len(name) for name in data.names)
    for j, name in enumerate(data.names):
        levels = ",".join(map(str, sorted(data.variable_levels[name])))
        lines.append(f"  {name:<{width}}  levels {levels:<6} missing {int(data.missing[:, j].sum())}")
    if data.categories:
        lines.append("Categorical recoding (original -> code):")
        for name, values in data.categories.items():
            lines.append(f"  {name}: " + ", ".join(f"{v} -> {k}" for k, v in enumerate(values)))
    if data.centering:
        lines.append("Centering:")
        for name, info in data.centering.items():
            where = (f"grand mean {info.center:.6g}" if info.kind == "grandmean"
                     else f"group mean ({data.cluster_names[0]} cluster means)")
            lines.append(f"  {name}: {where}")
    level1 = [j for j, name in enumerate(data.names) if 1 in data.variable_levels[name]]
    if data.levels > 1 and level1:
        observed_rows = ~data.missing[:, level1].all(axis=1)
        observed = np.bincount(data.cluster_index[0][observed_rows],
                               minlength=len(data.cluster_ids[0]))
        empty = np.flatnonzero(observed == 0)
        if empty.size:
            labels = _shorten([_cluster_label(data.cluster_names, data.cluster_ids,
                                              data.parent_index, 0, c) for c in empty], 5)
            lines.append(f"{empty.size} of {len(observed)} {data.cluster_names[0]} clusters "
                         f"have no observed level-1 value: {labels}")
    return "\n".join(lines)
