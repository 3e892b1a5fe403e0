"""Read a whole Mplus input file (``.inp``) into an :class:`InpFile`.

>>> inp = read_inp("configs/mplus_ug/ex9_6.inp")          # doctest: +SKIP
>>> run = inp.to_analysis()                                # doctest: +SKIP
>>> run.model.partable.n_free, run.estimator, run.options  # doctest: +SKIP

What is read, command by command (Mplus rules: a command name followed by a colon at
the start of a line; statements end with ``;``; ``!`` starts a comment; keywords are
case-insensitive and may be shortened to a unique prefix of at least four letters;
``IS``, ``ARE`` and ``=`` are interchangeable; long lines are accepted whole):

TITLE      free text.
DATA       FILE (relative to the input file's folder; quoted or not; a quoted name may
           continue on the next line), FORMAT (FREE or a Fortran format such as
           ``(2F4.1, 1X, 3F6.2)``, ``10F8``, ``2(F4.1, 1X)``, ``/`` for record breaks),
           TYPE = INDIVIDUAL, LISTWISE = ON/OFF.
VARIABLE   NAMES, USEVARIABLES (ranges ``y1-y6``: by numeric suffix in NAMES, by position
           elsewhere), MISSING (``ALL (-9999)``, ``y1-y3 (-99) x (-9 -8)``, ``.``, ``*``,
           ``BLANK`` for fixed formats), CLUSTER (one or two variables, highest level
           first), WITHIN, BETWEEN (also ``(level2) w (level3) z`` or with the cluster
           variable's name in the parentheses), CATEGORICAL, CENTERING = GRANDMEAN (x1
           x2) / GROUPMEAN (...), IDVARIABLE.
DEFINE     ``name = expression;`` (``+ - * / **``, LOG, EXP, SQRT, ..., CLUSTER_MEAN(x)),
           ``STANDARDIZE x1 x2;`` (mean and standard deviation of the data, denominator
           n), ``CENTER x (GRANDMEAN);``.
ANALYSIS   TYPE (GENERAL, TWOLEVEL, THREELEVEL, CROSSCLASSIFIED, RANDOM, BASIC, MISSING),
           ESTIMATOR (BAYES, ML, MLR), BITERATIONS = max (min), FBITERATIONS, THIN,
           CHAINS, BSEED, BCONVERGENCE, POINT, PROCESSORS, ALGORITHM = GIBBS (also
           GIBBS(PX1) and GIBBS(RW): jaxsem's sampler has its own block schedule).
MODEL, MODEL PRIORS, MODEL CONSTRAINT
           kept as text with their position, passed to :class:`jaxsem.Model` so that
           every syntax error names the line and column of the ``.inp`` file.
OUTPUT     TECH1, TECH8, STDYX, CINTERVAL, CINTERVAL(HPD), CINTERVAL(EQTAIL), SAMPSTAT.
SAVEDATA   FILE, BPARAMETERS, SAVE = FSCORES (n [thin]).
PLOT       TYPE = PLOT1 PLOT2 PLOT3.

Anything recognised but not supported yet (TYPE = MIXTURE, KNOWNCLASS, MODEL INDIRECT,
MONTECARLO, ESTIMATOR = WLSMV, ALGORITHM = MH, unknown option names, ...) is refused
with one :class:`~jaxsem.errors.ModelError` that lists every such item with its line,
before anything else is checked. Other problems raise one error each, naming the line.
Every option keeps its line (:class:`InpOption`).

The data are read only when asked (:meth:`InpFile.read_data`, :meth:`InpFile.to_analysis`).
"""
from __future__ import annotations

import copy
import difflib
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from jaxsem.data import Roles, read_text_data
from jaxsem.errors import DataError, JaxsemError, ModelError, source_location

__all__ = ["FortranField", "FortranFormat", "InpAnalysis", "InpFile", "InpOption",
           "InpSection", "parse_fortran_format", "parse_inp", "read_fixed_data",
           "read_inp"]


# ----------------------------------------------------------------------------- tables

_COMMANDS = ("TITLE", "DATA", "VARIABLE", "DEFINE", "ANALYSIS", "MODEL", "OUTPUT",
             "SAVEDATA", "PLOT", "MONTECARLO")
_SUBCOMMANDS = {
    "DATA": ("IMPUTATION", "WIDETOLONG", "LONGTOWIDE", "TWOPART", "MISSING", "SURVIVAL",
             "COHORT"),
    "MODEL": ("PRIORS", "CONSTRAINT", "INDIRECT", "TEST", "POPULATION", "MISSING",
              "COVERAGE"),
}
_SUPPORTED_COMMANDS = ("TITLE", "DATA", "VARIABLE", "DEFINE", "ANALYSIS", "MODEL",
                       "MODEL PRIORS", "MODEL CONSTRAINT", "OUTPUT", "SAVEDATA", "PLOT")
_COMMAND_NOTES = {
    "MONTECARLO": "Monte Carlo studies", "MODEL INDIRECT": "indirect effects",
    "MODEL TEST": "Wald tests", "MODEL POPULATION": "Monte Carlo population models",
    "MODEL MISSING": "missing-data models", "MODEL COVERAGE": "Monte Carlo coverage",
    "DATA IMPUTATION": "imputed data sets", "DATA WIDETOLONG": "data reshaping",
    "DATA LONGTOWIDE": "data reshaping", "DATA TWOPART": "two-part data",
    "DATA MISSING": "missing-data indicators", "DATA SURVIVAL": "survival data",
    "DATA COHORT": "cohort data",
}

#: command -> option names jaxsem reads.
_SUPPORTED_OPTIONS = {
    "DATA": ("FILE", "FORMAT", "TYPE", "LISTWISE"),
    "VARIABLE": ("NAMES", "USEVARIABLES", "MISSING", "CLUSTER", "WITHIN", "BETWEEN",
                 "CATEGORICAL", "CENTERING", "IDVARIABLE"),
    "ANALYSIS": ("TYPE", "ESTIMATOR", "BITERATIONS", "FBITERATIONS", "THIN", "CHAINS",
                 "BSEED", "BCONVERGENCE", "POINT", "PROCESSORS", "ALGORITHM"),
    "SAVEDATA": ("FILE", "BPARAMETERS", "SAVE"),
    "PLOT": ("TYPE",),
}
#: command -> option names Mplus has that jaxsem refuses (not supported yet).
_KNOWN_OPTIONS = {
    "DATA": ("NOBSERVATIONS", "NGROUPS", "SWMATRIX", "VARIANCES"),
    "VARIABLE": ("USEOBSERVATIONS", "NOMINAL", "COUNT", "CENSORED", "GROUPING",
                 "KNOWNCLASS", "CLASSES", "AUXILIARY", "CONSTRAINT", "PATTERN", "COHORT",
                 "COPATTERN", "COHRECODE", "TIMEMEASURES", "TNAMES", "LAGGED", "TINTERVAL",
                 "WEIGHT", "WTSCALE", "BWEIGHT", "B2WEIGHT", "B3WEIGHT", "BWTSCALE",
                 "B2WTSCALE", "B3WTSCALE", "REPWEIGHTS", "SUBPOPULATION", "FINITE",
                 "STRATIFICATION", "SURVIVAL", "TIMECENSORED", "DSURVIVAL", "DCATEGORICAL",
                 "DCONTINUOUS", "CUTPOINTS", "TRAINING", "FREQWEIGHT", "SEQUENCE", "TSCORES"),
    "ANALYSIS": ("PARAMETERIZATION", "LINK", "ROTATION", "ROWSTANDARDIZATION", "MODEL",
                 "REPSE", "BASEHAZARD", "CHOLESKY", "INTEGRATION", "MCSEED", "ADAPTIVE",
                 "INFORMATION", "BOOTSTRAP", "LRTBOOTSTRAP", "STARTS", "STITERATIONS",
                 "STCONVERGENCE", "STSCALE", "STSEED", "OPTSEED", "LRTSTARTS", "RSTARTS",
                 "ASTARTS", "H1STARTS", "DIFFTEST", "MULTIPLIER", "COVERAGE",
                 "ADDFREQUENCY", "ITERATIONS", "SDITERATIONS", "H1ITERATIONS",
                 "MITERATIONS", "MCITERATIONS", "MUITERATIONS", "RITERATIONS",
                 "AITERATIONS", "CONVERGENCE", "H1CONVERGENCE", "LOGCRITERION",
                 "RLOGCRITERION", "MCONVERGENCE", "MCCONVERGENCE", "MUCONVERGENCE",
                 "RCONVERGENCE", "MIXC", "MIXU", "LOGHIGH", "LOGLOW", "UCELLSIZE",
                 "VARIANCE", "SIMPLICITY", "TOLERANCE", "MDITERATIONS", "KOLMOGOROV",
                 "PRIOR", "PREDICTOR", "STVALUES", "MEDIATOR", "DISTRIBUTION",
                 "INTERACTIVE", "BCHECK"),
    "SAVEDATA": ("RESULTS", "ESTIMATES", "TECH3", "TECH4", "DIFFERENCES", "SWMATRIX",
                 "MISSFLAG", "FORMAT", "RECORDLENGTH", "SAMPLE", "COVARIANCE", "TYPE",
                 "MFILE", "MNAMES", "MFORMAT", "MMISSING", "MSELECT", "RANKING", "LRESPONSES",
                 "MULTIPLIER", "SIGBETWEEN", "STACKED", "H5RESULTS", "KEEPMISSING"),
    "PLOT": ("SERIES", "OUTLIERS", "MONITOR", "FACTOR"),
}
_OUTPUT_SUPPORTED = ("TECH1", "TECH8", "STDYX", "CINTERVAL", "SAMPSTAT")
_OUTPUT_KNOWN = tuple(f"TECH{k}" for k in (2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16)) + (
    "STANDARDIZED", "STDY", "STD", "RESIDUAL", "MODINDICES", "SVALUES", "PATTERNS",
    "FSCOEFFICIENT", "FSDETERMINACY", "NOCHISQUARE", "NOSERROR", "H1SE", "H1TECH3",
    "BASEHAZARD", "LOGRANK", "CROSSTABS", "DIFFTEST", "ENTROPY", "ALIGNMENT", "FSCOMPARISON",
    "LRTBOOTSTRAP", "PLOT")
_CINTERVAL_KINDS = (None, "HPD", "EQTAIL")
_TYPE_SUPPORTED = ("GENERAL", "TWOLEVEL", "THREELEVEL", "CROSSCLASSIFIED", "RANDOM",
                   "BASIC", "MISSING")
_TYPE_KNOWN = {"MIXTURE": "mixture models", "COMPLEX": "complex survey designs",
               "EFA": "exploratory factor analysis", "LOGLINEAR": "loglinear models",
               "IMPUTATION": "multiple imputation", "MONTECARLO": "Monte Carlo studies",
               "H1": "H1 only", "MEANSTRUCTURE": "old-style TYPE options"}
_ESTIMATORS = ("BAYES", "ML", "MLR")
_ESTIMATORS_KNOWN = ("MLM", "MLMV", "MLF", "WLS", "WLSM", "WLSMV", "ULS", "ULSMV", "GLS")
_BAYES_OPTIONS = ("BITERATIONS", "FBITERATIONS", "THIN", "CHAINS", "BSEED", "BCONVERGENCE",
                  "POINT", "ALGORITHM")
_GIBBS = ("GIBBS", "GIBBS(PX1)", "GIBBS(RW)")
_SAVE_KNOWN = ("CPROBABILITIES", "MAHALANOBIS", "LOGLIKELIHOOD", "INFLUENCE", "COOKS",
               "BCHWEIGHTS", "LRESPONSES", "REPWEIGHTS", "PROPENSITY", "H1SCORES",
               "FSCORES")
_PLOT_TYPES = ("PLOT1", "PLOT2", "PLOT3")
_DEFINE_REFUSED = {"IF": "IF ... THEN statements", "DO": "DO loops", "CUT": "CUT",
                   "_MISSING": "_MISSING", "MEAN": "MEAN(...) over variables",
                   "SUM": "SUM(...) over variables", "CLUSTER_SUM": "CLUSTER_SUM",
                   "CLUSTER_MIN": "CLUSTER_MIN", "CLUSTER_MAX": "CLUSTER_MAX"}

_HEADER = re.compile(r"^[ \t]*([A-Za-z]+)(?:[ \t]+([A-Za-z]+))?[ \t]*:", re.MULTILINE)
_KEYWORD = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)")
_SEPARATOR = re.compile(r"\s*(?:=|(?:IS|ARE)(?![A-Za-z0-9_.]))", re.IGNORECASE)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eEdD][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")


# ----------------------------------------------------------------------------- records

@dataclass(frozen=True)
class InpOption:
    """One option statement: ``name`` is the full upper-case Mplus name, ``written`` the
    keyword as written, ``value`` the text after ``IS``/``ARE``/``=`` with blanks
    squeezed, ``raw`` the same text as written (line breaks kept), ``line``/``col`` the
    keyword's place in the ``.inp`` file (1-based)."""
    command: str
    name: str
    written: str
    value: str
    raw: str
    line: int
    col: int


@dataclass(frozen=True)
class InpSection:
    """One command: ``name`` (``"MODEL PRIORS"``), the header's ``line``, its ``body`` text
    (comments kept) and where the body starts (``body_line``, ``body_col``, ``offset``
    into the file's text)."""
    name: str
    line: int
    body: str
    body_line: int
    body_col: int
    offset: int

    def padded(self) -> str:
        """The body preceded by blank lines and spaces, so that line and column numbers
        in it are those of the ``.inp`` file."""
        return "\n" * (self.body_line - 1) + " " * (self.body_col - 1) + self.body


@dataclass(frozen=True)
class DataCommand:
    """The DATA command. ``file``: resolved path (None when absent); ``format``: "free"
    or a :class:`FortranFormat`; ``listwise``: LISTWISE = ON."""
    file: Path | None = None
    file_written: str | None = None
    format: object = "free"
    type: str = "INDIVIDUAL"
    listwise: bool = False


@dataclass(frozen=True)
class DefineStatement:
    """One DEFINE statement: ``kind`` is "assign" (``target = expression``),
    "standardize" or "center" (``names``, ``centering`` kind)."""
    kind: str
    line: int
    target: str | None = None
    expression: str | None = None
    names: tuple[str, ...] = ()
    centering: str | None = None


@dataclass(frozen=True)
class AnalysisCommand:
    """The ANALYSIS command, interpreted.

    ``type``: TYPE words as written (upper case); ``levels`` 1, 2 or 3 (CROSSCLASSIFIED:
    2 with ``crossed``); ``random``/``basic``: the RANDOM / BASIC words;
    ``estimator``: "bayes", "ml", "mlr" or "basic" (TYPE = BASIC), Mplus's default when
    not given (MLR for multilevel, ML otherwise, BAYES for CROSSCLASSIFIED);
    ``bayes``: BayesOptions keyword arguments from the options given;
    ``processors``: PROCESSORS, the CPU threads that run groups of chains at once
    (BayesOptions.processors); ``algorithm``: as written (not used by jaxsem's sampler).
    """
    type: tuple[str, ...] = ()
    levels: int = 1
    crossed: bool = False
    random: bool = False
    basic: bool = False
    estimator: str = "ml"
    estimator_given: bool = False
    bayes: Mapping[str, object] = field(default_factory=dict)
    processors: int | None = None
    algorithm: str | None = None


# ----------------------------------------------------------------------------- Fortran

@dataclass(frozen=True)
class FortranField:
    """One numeric field: ``record`` (0-based line within an observation), ``start``
    (0-based column), ``width``, ``decimals`` (implied decimals when the field has no
    point), ``kind`` (F, E, D, G or I)."""
    record: int
    start: int
    width: int
    decimals: int
    kind: str


@dataclass(frozen=True)
class FortranFormat:
    """A Fortran FORMAT: its fields in order and the number of lines per observation."""
    text: str
    fields: tuple[FortranField, ...]
    records: int


_FMT_TOKEN = re.compile(r"""\s*(?:
    (?P<open>(?P<grep>\d*)\s*\()
  | (?P<close>\))
  | (?P<edit>(?P<rep>\d*)\s*(?P<kind>[FEDGI])\s*(?P<w>\d+)(?:\s*\.\s*(?P<d>\d+))?)
  | (?P<skip>(?P<n>\d*)\s*X)
  | (?P<tab>T\s*(?P<col>\d+))
  | (?P<slash>(?P<srep>\d*)\s*/)
  | (?P<comma>,)
  | (?P<end>$)
)""", re.IGNORECASE | re.VERBOSE)


def parse_fortran_format(text: str) -> FortranFormat:
    """Parse a Fortran format such as ``5F8.0, 3F8.2``, ``(2F4.1, 1X, 3F6.2)``, ``10F8``,
    ``2(F4.1, 1X)``, ``T10``, ``/``. Raises ValueError with what is wrong."""
    items, pos, stack = [], 0, []
    current = items
    while True:
        match = _FMT_TOKEN.match(text, pos)
        if match is None or (match.group("end") is not None and match.end() == pos
                             and pos < len(text)):
            raise ValueError(f"cannot read the format at '{text[pos:].strip()[:20]}'; "
                             "use edit descriptors such as 3F8.2, 2X, I4, / and commas")
        pos = match.end()
        if match.group("end") is not None:
            break
        if match.group("open") is not None:
            group = []
            current.append(("group", int(match.group("grep") or 1), group))
            stack.append(current)
            current = group
        elif match.group("close") is not None:
            if not stack:
                raise ValueError("a ')' in the format has no '('")
            current = stack.pop()
        elif match.group("edit") is not None:
            width = int(match.group("w"))
            if width == 0:
                raise ValueError(f"field '{match.group('edit').strip()}' has width 0")
            decimals = int(match.group("d") or 0)
            kind = match.group("kind").upper()
            current.append(("field", int(match.group("rep") or 1), (kind, width, decimals)))
        elif match.group("skip") is not None:
            current.append(("skip", int(match.group("n") or 1), None))
        elif match.group("tab") is not None:
            current.append(("tab", 1, int(match.group("col"))))
        elif match.group("slash") is not None:
            current.append(("slash", int(match.group("srep") or 1), None))
    if stack:
        raise ValueError("a '(' in the format is not closed")
    fields, record, column = [], 0, 0

    def lay_out(sequence):
        nonlocal record, column
        for kind, repeat, payload in sequence:
            for _ in range(repeat):
                if kind == "group":
                    lay_out(payload)
                elif kind == "field":
                    letter, width, decimals = payload
                    fields.append(FortranField(record, column, width, decimals, letter))
                    column += width
                elif kind == "skip":
                    column += 1
                elif kind == "tab":
                    column = payload - 1
                else:
                    record, column = record + 1, 0

    lay_out(items)
    if not fields:
        raise ValueError("the format has no numeric fields (such as F8.2)")
    return FortranFormat(text, tuple(fields), record + 1)


def read_fixed_data(path: str | os.PathLike, names: Sequence[str], fmt: FortranFormat | str,
                    *, missing_symbols: Sequence[str] = (),
                    blank_missing: bool = False) -> pd.DataFrame:
    """Read a fixed-format data file (Fortran FORMAT) into a DataFrame with columns
    ``names``.

    Each observation takes ``fmt.records`` lines; short lines count as blank to their
    end. A field with a decimal point is read as written, one without gets
    ``decimals`` implied decimals (``123`` under F5.2 is 1.23). An empty field is
    missing with ``blank_missing`` (Mplus MISSING = BLANK), else an error; tokens in
    ``missing_symbols`` (``.``, ``*``) are missing. CRLF line ends, a UTF-8 byte-order
    mark and tabs (one column each) are accepted.
    """
    if isinstance(fmt, str):
        fmt = parse_fortran_format(fmt)
    names = list(names)
    if len(fmt.fields) != len(names):
        raise DataError(f"the FORMAT {fmt.text!r} reads {len(fmt.fields)} values per "
                        f"observation but NAMES gives {len(names)} variables; make them "
                        "agree.")
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read data file {path}: {exc.strerror}.") from None
    lines = raw.decode("utf-8-sig", errors="replace").replace("\t", " ").split("\n")
    lines = [line.rstrip("\r") for line in lines]
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise DataError(f"{path} holds no data rows; check the file name.")
    if len(lines) % fmt.records:
        raise DataError(f"{path}: the FORMAT takes {fmt.records} lines per observation but "
                        f"the file has {len(lines)} lines, which is not a multiple of "
                        f"{fmt.records}; the last observation is incomplete.")
    n_obs = len(lines) // fmt.records
    symbols = set(missing_symbols)
    values = np.empty((n_obs, len(names)))
    for j, (name, spec) in enumerate(zip(names, fmt.fields)):
        for i in range(n_obs):
            line_number = i * fmt.records + spec.record + 1
            token = lines[line_number - 1][spec.start:spec.start + spec.width].strip()
            values[i, j] = _fixed_value(token, spec, blank_missing, symbols, path, i + 1,
                                        line_number, name)
    return pd.DataFrame(values, columns=names)


def _fixed_value(token: str, spec: FortranField, blank_missing: bool, symbols: set,
                 path, row: int, line: int, name: str) -> float:
    if not token or token in symbols:
        if token or blank_missing:
            return np.nan
        raise DataError(f"{path}, row {row} (line {line}), columns {spec.start + 1}-"
                        f"{spec.start + spec.width} ({name}): the field is blank. Declare "
                        "MISSING = BLANK to read blanks as missing, or check the FORMAT.")
    where = (f"{path}, row {row} (line {line}), columns {spec.start + 1}-"
             f"{spec.start + spec.width} ({name})")
    if "." in token or spec.decimals == 0:
        if _NUMBER.fullmatch(token):
            return float(token.replace("d", "e").replace("D", "e"))
    else:
        match = re.fullmatch(r"([+-]?\d+)(?:[eEdD]([+-]?\d+))?", token)
        if match:
            exponent = int(match.group(2) or 0) - spec.decimals
            return float(int(match.group(1))) * 10.0 ** exponent
    hint = (" A blank inside a number usually means the FORMAT widths do not match the "
            "file." if " " in token else "")
    raise DataError(f"{where}: {token!r} is not a number.{hint} Fix the file or the FORMAT, "
                    "or declare the token a missing-value code.")


# ----------------------------------------------------------------------------- the file

@dataclass(frozen=True)
class InpAnalysis:
    """What an estimator needs from an input file.

    ``model``: the :class:`jaxsem.Model` (None for TYPE = BASIC without MODEL);
    ``frame``: the data, MISSING codes already NaN, LISTWISE applied;
    ``cluster``: cluster variables, highest level first (None: single level);
    ``estimator``: "bayes", "ml", "mlr" or "basic"; ``options``: estimator options with
    jaxsem's names (:class:`jaxsem.bayes.BayesOptions` fields for Bayes; empty for ML);
    ``centering``/``define``/``usevariables``: the arguments of :meth:`Model.prepare`.
    """
    model: object
    frame: pd.DataFrame
    cluster: tuple[str, ...] | None
    estimator: str
    options: Mapping[str, object]
    centering: Mapping[str, str]
    define: tuple[tuple[str, str], ...]
    usevariables: tuple[str, ...] | None
    source: str = "input"
    lines: Mapping[str, int] = field(default_factory=dict)

    def prepare_kwargs(self) -> dict:
        """Keyword arguments of :meth:`jaxsem.Model.prepare` (with ``cluster``)."""
        return dict(cluster=self.cluster, centering=dict(self.centering),
                    define=self.define, usevariables=self.usevariables)

    def prepare(self):
        """``model.prepare(frame, ...)``: the data checked against the model."""
        if self.model is None:
            raise ModelError(f"{self.source}: the input has no MODEL command.")
        with _in_file(self.source, self.lines):
            return self.model.prepare(self.frame, **self.prepare_kwargs())


@dataclass
class InpFile:
    """A parsed Mplus input file (see the module docstring for what is read).

    ``source``: the name used in messages; ``base_dir``: the folder file names are
    resolved against; ``text``: the input text (BOM removed, LF line ends);
    ``sections``: command name -> :class:`InpSection`; ``options``: every option
    statement with its line (:meth:`option` finds one); ``data``: :class:`DataCommand`;
    ``names``: NAMES expanded; ``roles``: the VARIABLE command as :class:`jaxsem.Roles`
    (clusters highest level first, ``crossed`` for CROSSCLASSIFIED, ``between_levels``
    from ``(level2)``/``(level3)`` labels, ``missing`` codes per variable or ``"ALL"``,
    arithmetic DEFINE statements in ``define``); ``idvariable``; ``defines``: every DEFINE
    statement (:class:`DefineStatement`); ``analysis``: :class:`AnalysisCommand`;
    ``output``: OUTPUT request -> argument (``{"CINTERVAL": "HPD", "TECH1": None}``);
    ``savedata``: ``FILE``/``BPARAMETERS`` -> resolved path, ``SAVE`` -> ``{"FSCORES":
    (draws[, thin])}``; ``plot``: PLOT TYPE words; ``missing_blank``: MISSING = BLANK.
    """
    source: str
    base_dir: Path
    text: str
    title: str
    sections: dict[str, InpSection]
    options: tuple[InpOption, ...]
    data: DataCommand
    names: tuple[str, ...]
    roles: Roles
    idvariable: str | None
    defines: tuple[DefineStatement, ...]
    analysis: AnalysisCommand
    output: dict[str, str | None]
    savedata: dict[str, object]
    plot: tuple[str, ...]
    missing_blank: bool = False
    _frame: pd.DataFrame | None = field(default=None, repr=False)
    _model: object = field(default=None, repr=False)

    # -- access ---------------------------------------------------------------------

    def option(self, command: str, name: str) -> InpOption | None:
        """The option ``name`` of ``command`` (full upper-case names), or None."""
        return next((o for o in self.options if o.command == command and o.name == name),
                    None)

    @property
    def model_section(self) -> InpSection | None:
        return self.sections.get("MODEL")

    @property
    def model_text(self) -> str | None:
        """The MODEL body padded so that its line numbers are those of the file."""
        section = self.sections.get("MODEL")
        return section.padded() if section else None

    @property
    def priors_text(self) -> str | None:
        section = self.sections.get("MODEL PRIORS")
        return section.padded() if section and section.body.strip() else None

    @property
    def constraint_text(self) -> str | None:
        section = self.sections.get("MODEL CONSTRAINT")
        return section.padded() if section and section.body.strip() else None

    @property
    def cluster(self) -> tuple[str, ...] | None:
        return self.roles.clusters or None

    # -- the model -------------------------------------------------------------------

    def model(self):
        """The :class:`jaxsem.Model` of the MODEL, MODEL PRIORS and MODEL CONSTRAINT
        commands with the VARIABLE roles (built once; its ParTable is built here so that
        model errors come now, with the file's line numbers).

        Roles name only variables the MODEL uses: jaxsem analyses only those (as
        Model.prepare does with roles of variables the model leaves out), and an unused
        CATEGORICAL variable would otherwise count as a categorical outcome. BETWEEN
        ``(level)`` labels become ``between_levels``; in a cross-classified model they
        name the crossed factor (see :class:`jaxsem.data.Roles`).
        """
        if self._model is not None:
            return self._model
        from jaxsem.model import Model  # noqa: PLC0415 (jaxsem.model imports data only)
        from jaxsem.syntax.mplus import parse_mplus_model  # noqa: PLC0415

        section = self.sections.get("MODEL")
        if section is None:
            raise ModelError(f"{self.source}: the input has no MODEL command; add MODEL: "
                             "with the model statements.")
        if not section.body.strip() or not re.sub(r"![^\n]*", "", section.body).strip():
            raise ModelError(f"{self.source}, line {section.line}: the MODEL command is "
                             "empty; write at least one statement, e.g. 'f BY y1-y3;'.")
        reference = list(self.roles.usevariables or self.names) + [
            d.target for d in self.defines if d.kind == "assign"
            and d.target.lower() not in {n.lower() for n in (self.roles.usevariables
                                                             or self.names)}]
        with _in_file(self.source):
            parsed = parse_mplus_model(section.padded(), names=reference)
            used = {n for t in parsed.terms for n in (t.lhs, t.rhs) if n}
            roles = self.roles

            def keep(names):
                return [n for n in names if n.lower() in used]

            between_levels = {n: lv for n, lv in roles.between_levels.items()
                              if n.lower() in used}
            model = Model(section.padded(), dialect="mplus", within=keep(roles.within),
                          between=keep(roles.between), between_levels=between_levels,
                          categorical=keep(roles.categorical), clusters=roles.clusters,
                          crossed=roles.crossed,
                          n_levels=None if roles.crossed else (
                              self.analysis.levels if self.analysis.levels > 1 else None),
                          constraints=self.constraint_text, priors=self.priors_text,
                          names=reference)
            table = model.partable
        self._check_model_against_analysis(model, table, section)
        self._model = model
        return model

    def _check_model_against_analysis(self, model, table, section: InpSection) -> None:
        random = [t for t in model.parsed.terms if t.random]
        type_option = self.option("ANALYSIS", "TYPE")
        if random and not self.analysis.random:
            term = random[0]
            line = term.loc.line if term.loc else section.line
            where = (f"TYPE = {type_option.value} (line {type_option.line})" if type_option
                     else "ANALYSIS has no TYPE")
            raise ModelError(f"{self.source}, line {line}: the MODEL has a random "
                             f"coefficient ('{term.random} | ...') but {where} lacks "
                             "RANDOM; add it, e.g. TYPE = TWOLEVEL RANDOM;")
        extra_levels = [lv for lv in model.parsed.levels if lv != "within"]
        if extra_levels and self.analysis.levels == 1:
            raise ModelError(f"{self.source}, line {section.line}: the MODEL has level "
                             f"sections (%BETWEEN ...%) but the ANALYSIS TYPE is not "
                             "multilevel; add TYPE = TWOLEVEL (or THREELEVEL / "
                             "CROSSCLASSIFIED) and CLUSTER.")

    # -- the data ---------------------------------------------------------------------

    def read_data(self) -> pd.DataFrame:
        """The data file as a DataFrame with the NAMES columns, MISSING codes as NaN."""
        if self._frame is not None:
            return self._frame
        file_option = self.option("DATA", "FILE")
        if self.data.file is None:
            raise DataError(f"{self.source}: the DATA command has no FILE; add "
                            "DATA: FILE = name.dat;")
        path = self.data.file
        where = f"{self.source}, line {file_option.line}"
        if not path.exists():
            raise DataError(f"{where}: data file not found: {path} (FILE = "
                            f"{self.data.file_written}, looked for relative to the input "
                            f"file's folder {self.base_dir}). Check the name and the folder.")
        if path.is_dir():
            raise DataError(f"{where}: {path} is a folder, not a data file.")
        names_option = self.option("VARIABLE", "NAMES")
        if names_option is None:
            raise DataError(f"{self.source}: the VARIABLE command has no NAMES; list one "
                            "name per column of the data file.")
        symbols = sorted({c for codes in self.roles.missing.values() for c in codes
                          if isinstance(c, str)})
        if isinstance(self.data.format, FortranFormat):
            if len(self.data.format.fields) != len(self.names):
                format_option = self.option("DATA", "FORMAT")
                raise DataError(
                    f"{self.source}, line {names_option.line}: NAMES lists "
                    f"{len(self.names)} variables but the FORMAT on line "
                    f"{format_option.line} reads {len(self.data.format.fields)} values per "
                    "observation; make them agree.")
            with _in_file(where):
                frame = read_fixed_data(path, self.names, self.data.format,
                                        missing_symbols=symbols,
                                        blank_missing=self.missing_blank)
        else:
            n_columns, line_number = _first_row_width(path)
            if n_columns is not None and n_columns != len(self.names):
                raise DataError(
                    f"{self.source}, line {names_option.line}: NAMES lists "
                    f"{len(self.names)} variables but the data file {path} has {n_columns} "
                    f"columns (line {line_number} of the file). Give one name per column.")
            with _in_file(where):
                frame = read_text_data(path, self.names, missing_codes=symbols)
        for key, codes in self.roles.missing.items():
            numbers = [c for c in codes if not isinstance(c, str)]
            if not numbers:
                continue
            columns = list(frame.columns) if key.upper() == "ALL" else [
                _spelled(key, self.names)]
            for column in columns:
                frame.loc[frame[column].isin(numbers), column] = np.nan
        self._frame = frame
        return frame

    # -- everything together ------------------------------------------------------------

    def to_analysis(self) -> InpAnalysis:
        """The model, data and estimator settings (see :class:`InpAnalysis`)."""
        frame = self.read_data()
        model = None if (self.analysis.basic and "MODEL" not in self.sections) else self.model()
        define = []
        centering = dict(self.roles.centering)
        for statement in self.defines:
            if statement.kind == "assign":
                define.append((statement.target, statement.expression))
            elif statement.kind == "center":
                centering.update({n: statement.centering for n in statement.names})
            else:
                for name in statement.names:
                    column = frame[_spelled(name, self.names)]
                    mean, sd = float(column.mean()), float(column.std(ddof=0))
                    if not np.isfinite(sd) or sd == 0:
                        raise DataError(f"{self.source}, line {statement.line}: STANDARDIZE "
                                        f"{name}: the variable has no variation in the data.")
                    define.append((name, f"({name} - ({mean!r})) / ({sd!r})"))
        if model is not None:
            used = {n.lower() for t in model.parsed.terms for n in (t.lhs, t.rhs) if n}
            centering = {n: k for n, k in centering.items() if n.lower() in used}
        if self.data.listwise and model is not None:
            frame = self._listwise(frame, model)
        options = dict(self.analysis.bayes) if self.analysis.estimator == "bayes" else {}
        if self.analysis.estimator == "bayes" and self.analysis.processors:
            options["processors"] = self.analysis.processors
        return InpAnalysis(model=model, frame=frame, cluster=self.cluster,
                           estimator=self.analysis.estimator, options=options,
                           centering=centering, define=tuple(define),
                           usevariables=self.roles.usevariables, source=self.source,
                           lines=self.option_lines())

    def option_lines(self) -> dict[str, int]:
        """VARIABLE option name -> line, and ``"DEFINE <target>"`` -> line (lower case)."""
        lines = {o.name: o.line for o in self.options if o.command == "VARIABLE"}
        for statement in self.defines:
            for name in ((statement.target,) if statement.target else statement.names):
                lines[f"DEFINE {name.lower()}"] = statement.line
            if statement.kind == "center":
                lines.setdefault("CENTERING", statement.line)
        return lines

    def _listwise(self, frame: pd.DataFrame, model) -> pd.DataFrame:
        variables = self.roles.usevariables or [
            v for b in model.partable.blocks for v in b.observed + b.covariates]
        columns = [c for c in frame.columns
                   if c.lower() in {v.lower() for v in variables}]
        return frame.loc[~frame[columns].isna().any(axis=1)].reset_index(drop=True)


# ----------------------------------------------------------------------------- reading

def read_inp(path: str | os.PathLike) -> InpFile:
    """Read an Mplus input file; the data file is resolved against its folder."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"input file not found: {path} (looked in "
                         f"{path.resolve().parent})") from None
    except OSError as exc:
        raise ModelError(f"cannot read input file {path}: {exc.strerror}") from None
    text = raw.decode("utf-8-sig", errors="replace")
    return parse_inp(text, path.resolve().parent, source=str(path))


def parse_inp(text: str, base_dir: str | os.PathLike = ".", *,
              source: str = "input") -> InpFile:
    """Parse the text of an Mplus input file. ``base_dir``: the folder relative file
    names are resolved against; ``source``: the name used in messages. Nothing is read
    from disk here."""
    return _Reader(text, Path(base_dir), source).read()


class _Reader:
    def __init__(self, text: str, base_dir: Path, source: str):
        self.text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
        self.base_dir = base_dir
        self.source = source
        self.unsupported: list[tuple[int, str]] = []

    def fail(self, line: int | None, message: str, kind=ModelError) -> JaxsemError:
        where = f"{self.source}, line {line}" if line else self.source
        return kind(f"{where}: {message}")

    # -- commands and statements -------------------------------------------------------

    def split_sections(self) -> dict[str, InpSection]:
        headers = []
        current = None
        for match in _HEADER.finditer(self.text):
            name = _command_name(match.group(1), match.group(2), strict=current == "TITLE")
            if name is None:
                continue
            headers.append((name, match))
            current = name
        first = headers[0][1].start() if headers else len(self.text)
        stray = re.sub(r"![^\n]*", "", self.text[:first]).strip()
        if stray:
            line = self.text[:first].count("\n", 0, self.text.find(stray[:1])) + 1
            raise self.fail(line, f"text before the first command: '{stray[:40]}'. Every "
                            "part of an input file belongs to a command such as TITLE:, "
                            "DATA: or MODEL:.")
        sections: dict[str, InpSection] = {}
        for k, (name, match) in enumerate(headers):
            end = headers[k + 1][1].start() if k + 1 < len(headers) else len(self.text)
            line = self.text.count("\n", 0, match.start()) + 1
            if name in sections:
                raise self.fail(line, f"the {name} command is given twice (first on line "
                                f"{sections[name].line}); merge them into one.")
            body_line, body_col = source_location(self.text, match.end())
            sections[name] = InpSection(name, line, self.text[match.end():end], body_line,
                                        body_col, match.end())
        return sections

    def statements(self, section: InpSection) -> list[tuple[str, int, int, int]]:
        """(text, line, col, offset) of each ``;``-ended statement, comments blanked."""
        body = re.sub(r"![^\n]*", lambda m: " " * len(m.group()), section.body)
        out, start = [], 0
        pieces = body.split(";")
        for k, piece in enumerate(pieces):
            stripped = piece.lstrip()
            begin = start + len(piece) - len(stripped)
            start += len(piece) + 1
            if not stripped.strip():
                continue
            line, col = source_location(self.text, section.offset + begin)
            if k == len(pieces) - 1:
                raise self.fail(line, f"missing ';' at the end of this {section.name} "
                                f"statement ('{' '.join(stripped.split())[:40]}'); end "
                                "every statement with ';'.")
            out.append((stripped.rstrip(), line, col, section.offset + begin))
        return out

    def option_statements(self, section: InpSection) -> list[InpOption]:
        command = section.name
        names = _SUPPORTED_OPTIONS[command] + _KNOWN_OPTIONS.get(command, ())
        options: list[InpOption] = []
        for text, line, col, _ in self.statements(section):
            keyword = _KEYWORD.match(text)
            if keyword is None:
                self.unsupported.append((line, f"{command}: cannot read "
                                               f"'{' '.join(text.split())[:40]}'"))
                continue
            written = keyword.group(1)
            found = _resolve(written, names)
            for k, text_line in enumerate(text.split("\n")[1:], start=1):
                follows = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:=|(?:IS|ARE)\b)",
                                   text_line, re.IGNORECASE)
                if follows and _resolve(follows.group(1), names):
                    before = text.split("\n")[:k]
                    while len(before) > 1 and not before[-1].strip():
                        before.pop()
                    raise self.fail(line + len(before) - 1, f"missing ';' at the end of "
                                    "this line: "
                                    f"{follows.group(1).upper()} on line {line + k} starts "
                                    "a new statement. End every statement with ';'.")
            rest = text[keyword.end():]
            separator = _SEPARATOR.match(rest)
            raw = rest[separator.end():] if separator else rest
            if len(found) > 1:
                raise self.fail(line, f"'{written}' is ambiguous in {command}: it could be "
                                f"{' or '.join(found)}; write more letters.")
            if not found:
                elsewhere = [c for c, opts in _SUPPORTED_OPTIONS.items()
                             if c != command and _resolve(written, opts)]
                hint = f" (it belongs to {elsewhere[0]})" if elsewhere else ""
                self.unsupported.append((line, f"{command}: unknown option "
                                               f"'{written.upper()}'{hint}"))
                continue
            name = found[0]
            option = InpOption(command, name, written, " ".join(raw.split()), raw.strip(),
                               line, col)
            if name not in _SUPPORTED_OPTIONS[command]:
                self.unsupported.append((line, f"{command}: {name}"
                                               + (f" = {option.value}" if option.value else "")))
                continue
            previous = next((o for o in options if o.name == name), None)
            if previous is not None:
                raise self.fail(line, f"{name} is given twice in {command} (first on line "
                                f"{previous.line}); keep one.")
            options.append(option)
        return options

    # -- phase 1: what is there, what is refused ---------------------------------------

    def read(self) -> InpFile:
        sections = self.split_sections()
        for name, section in sections.items():
            if name not in _SUPPORTED_COMMANDS:
                note = _COMMAND_NOTES.get(name)
                self.unsupported.append((section.line, f"the {name} command"
                                         + (f" ({note})" if note else "")))
        options: list[InpOption] = []
        for command in ("DATA", "VARIABLE", "ANALYSIS", "SAVEDATA", "PLOT"):
            if command in sections:
                options += self.option_statements(sections[command])
        output = self.read_output(sections.get("OUTPUT"))
        defines = self.read_define(sections.get("DEFINE"))
        self.check_values(options)
        if self.unsupported:
            items = sorted(set(self.unsupported))
            listing = "\n".join(f"  line {line}: {what}" for line, what in items)
            raise ModelError(f"{self.source}: {len(items)} item(s) in this input are not "
                             f"supported by jaxsem yet:\n{listing}\nRemove them (or rewrite "
                             "the analysis without them) and run again; nothing was computed.")
        # -- phase 2: interpretation
        by = {(o.command, o.name): o for o in options}
        title = "\n".join(line.strip() for line in sections["TITLE"].body.strip().splitlines()
                          ) if "TITLE" in sections else ""
        data, missing_blank_allowed = self.read_data_command(by)
        names, roles, idvariable, missing_blank = self.read_variable_command(by, defines)
        if missing_blank and not missing_blank_allowed:
            option = by[("VARIABLE", "MISSING")]
            raise self.fail(option.line, "MISSING = BLANK needs fixed-format data (a "
                            "Fortran FORMAT in DATA); free-format data separate values by "
                            "blanks. Use a code such as -999 or '.'.")
        analysis = self.read_analysis_command(by)
        roles = self.check_roles_with_analysis(by, roles, analysis)
        savedata = self.read_savedata(by)
        plot = tuple(by[("PLOT", "TYPE")].value.upper().split()) if ("PLOT", "TYPE") in by else ()
        plot = tuple(_resolve(word, _PLOT_TYPES)[0] for word in plot)
        if "MODEL" not in sections and not analysis.basic:
            raise self.fail(None, "the input has no MODEL command; add MODEL: with the "
                            "model statements (or use TYPE = BASIC for sample statistics).")
        return InpFile(source=self.source, base_dir=self.base_dir, text=self.text,
                       title=title, sections=sections, options=tuple(options), data=data,
                       names=names, roles=roles, idvariable=idvariable,
                       defines=tuple(defines), analysis=analysis, output=output,
                       savedata=savedata, plot=plot, missing_blank=missing_blank)

    def read_output(self, section: InpSection | None) -> dict[str, str | None]:
        output: dict[str, str | None] = {}
        if section is None:
            return output
        for text, line, _, _ in self.statements(section):
            pos = 0
            for match in re.finditer(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\(([^)]*)\))?\s*,?",
                                     text):
                if match.start() != pos:
                    break
                pos = match.end()
                word, argument = match.group(1), match.group(2)
                argument = " ".join(argument.split()).upper() if argument else None
                found = _resolve(word, _OUTPUT_SUPPORTED + _OUTPUT_KNOWN)
                if len(found) != 1:
                    self.unsupported.append((line, f"OUTPUT: unknown request "
                                                   f"'{word.upper()}'"))
                    continue
                name = found[0]
                if name == "STANDARDIZED" and argument == "STDYX":
                    name, argument = "STDYX", None
                shown = name + (f"({argument})" if argument else "")
                if name not in _OUTPUT_SUPPORTED or (
                        name == "CINTERVAL" and argument not in _CINTERVAL_KINDS) or (
                        name != "CINTERVAL" and argument):
                    self.unsupported.append((line, f"OUTPUT: {shown}"))
                    continue
                output[name] = argument
            if pos < len(text.rstrip()):
                self.unsupported.append((line, f"OUTPUT: cannot read "
                                               f"'{' '.join(text[pos:].split())[:40]}'"))
        return output

    def read_define(self, section: InpSection | None) -> list[DefineStatement]:
        from jaxsem.data import _parse_define  # noqa: PLC0415 (same parser as prepare_data)

        defines: list[DefineStatement] = []
        if section is None:
            return defines
        for text, line, _, _ in self.statements(section):
            flat = " ".join(text.split())
            head = re.match(r"([A-Za-z_][A-Za-z0-9_]*)", flat)
            word = head.group(1).upper() if head else ""
            calls = {w.upper() for w in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(", flat)}
            refused = [w for w in [word, *sorted(calls)] if w in _DEFINE_REFUSED]
            if refused:
                self.unsupported.append((line, f"DEFINE: {_DEFINE_REFUSED[refused[0]]} "
                                               f"('{flat[:40]}')"))
                continue
            if _resolve(word, ("STANDARDIZE",)) and "=" not in flat:
                names = tuple(_list_tokens(flat[head.end():]))
                changed = {d.target.lower() for d in defines if d.kind == "assign"}
                if any("-" in n for n in names):
                    raise self.fail(line, "STANDARDIZE: write the variables out, without "
                                    "ranges.")
                for name in names:
                    if name.lower() in changed:
                        self.unsupported.append((line, f"DEFINE: STANDARDIZE of '{name}', "
                                                       "which an earlier DEFINE changes"))
                defines.append(DefineStatement("standardize", line, names=names))
                continue
            center = re.fullmatch(r"CENTER\s+(.*?)\s*\(\s*(GRANDMEAN|GROUPMEAN)\s*\)", flat,
                                  re.IGNORECASE)
            if center:
                defines.append(DefineStatement("center", line,
                                               names=tuple(_list_tokens(center.group(1))),
                                               centering=center.group(2).lower()))
                continue
            assign = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.+)", flat)
            if assign is None:
                self.unsupported.append((line, f"DEFINE: cannot read '{flat[:40]}' (jaxsem "
                                               "reads 'name = expression;', STANDARDIZE and "
                                               "CENTER)"))
                continue
            target, expression = assign.group(1), assign.group(2)
            try:
                _parse_define(f"DEFINE {target} = {expression}", expression)
            except DataError as exc:
                raise self.fail(line, str(exc), DataError) from None
            defines.append(DefineStatement("assign", line, target=target,
                                           expression=expression))
        return defines

    def check_values(self, options: list[InpOption]) -> None:
        """Values that make an option unsupported (TYPE = MIXTURE, ESTIMATOR = WLSMV...)."""
        for o in options:
            words = o.value.upper().replace("(", " (").split()
            if (o.command, o.name) == ("ANALYSIS", "TYPE"):
                for word in words:
                    found = _resolve(word, _TYPE_SUPPORTED + tuple(_TYPE_KNOWN))
                    if word.isdigit():
                        continue
                    if not found:
                        self.unsupported.append((o.line, f"ANALYSIS: unknown TYPE word "
                                                         f"'{word}'"))
                    elif found[0] in _TYPE_KNOWN:
                        self.unsupported.append((o.line, f"ANALYSIS: TYPE = {found[0]} "
                                                         f"({_TYPE_KNOWN[found[0]]})"))
            elif (o.command, o.name) == ("ANALYSIS", "ESTIMATOR"):
                value = o.value.upper()
                if value not in _ESTIMATORS:
                    what = "" if value in _ESTIMATORS_KNOWN else " (unknown estimator)"
                    self.unsupported.append((o.line, f"ANALYSIS: ESTIMATOR = {value}{what}"))
            elif (o.command, o.name) == ("ANALYSIS", "ALGORITHM"):
                value = o.value.upper().replace(" ", "")
                if value not in _GIBBS:
                    self.unsupported.append((o.line, f"ANALYSIS: ALGORITHM = {value} "
                                                     "(jaxsem runs a Gibbs sampler)"))
            elif (o.command, o.name) == ("DATA", "TYPE"):
                if o.value.upper() not in ("INDIVIDUAL", "INDIV"):
                    self.unsupported.append((o.line, f"DATA: TYPE = {o.value.upper()} "
                                                     "(jaxsem reads individual data)"))
            elif (o.command, o.name) == ("VARIABLE", "WITHIN") and "(" in o.value:
                self.unsupported.append((o.line, "VARIABLE: WITHIN with a level in "
                                                 "parentheses"))
            elif (o.command, o.name) == ("VARIABLE", "CATEGORICAL") and "(" in o.value:
                self.unsupported.append((o.line, "VARIABLE: CATEGORICAL with a "
                                                 "measurement model in parentheses"))
            elif (o.command, o.name) == ("SAVEDATA", "SAVE"):
                for word in re.sub(r"\([^)]*\)", " ", o.value).upper().split():
                    found = _resolve(word, _SAVE_KNOWN)
                    if found != ["FSCORES"]:
                        self.unsupported.append((o.line, f"SAVEDATA: SAVE = {word}"))
            elif (o.command, o.name) == ("PLOT", "TYPE"):
                for word in words:
                    if len(_resolve(word, _PLOT_TYPES)) != 1:
                        self.unsupported.append((o.line, f"PLOT: TYPE = {word}"))

    # -- phase 2: each command -------------------------------------------------------------

    def read_data_command(self, by) -> tuple[DataCommand, bool]:
        file_option = by.get(("DATA", "FILE"))
        path = written = None
        if file_option is not None:
            written = _file_name(file_option.raw)
            if not written:
                raise self.fail(file_option.line, "FILE has no file name; write "
                                "FILE = name.dat;", DataError)
            path = self.resolve_path(written)
        fmt: object = "free"
        format_option = by.get(("DATA", "FORMAT"))
        if format_option is not None and format_option.value.upper() not in ("FREE", ""):
            try:
                fmt = parse_fortran_format(format_option.value)
            except ValueError as exc:
                raise self.fail(format_option.line, f"FORMAT {format_option.value!r}: {exc}.",
                                DataError) from None
        listwise = False
        listwise_option = by.get(("DATA", "LISTWISE"))
        if listwise_option is not None:
            value = listwise_option.value.upper()
            if value not in ("ON", "OFF"):
                raise self.fail(listwise_option.line, f"LISTWISE is ON or OFF, not "
                                f"{listwise_option.value!r}.", DataError)
            listwise = value == "ON"
        return DataCommand(path, written, fmt, "INDIVIDUAL", listwise), fmt != "free"

    def resolve_path(self, written: str) -> Path:
        name = written.replace("\\", "/") if os.sep == "/" else written
        path = Path(name).expanduser()
        return path if path.is_absolute() else (self.base_dir / path)

    def read_variable_command(self, by, defines: list[DefineStatement]):
        names_option = by.get(("VARIABLE", "NAMES"))
        if names_option is None:
            raise self.fail(None, "the VARIABLE command has no NAMES; list one name per "
                            "column of the data file: NAMES = y1-y4 x clus;", DataError)
        names = self.expand(names_option, None)
        if not names:
            raise self.fail(names_option.line, "NAMES is empty.", DataError)
        seen: dict[str, str] = {}
        for name in names:
            if name.lower() in seen:
                raise self.fail(names_option.line, f"NAMES lists '{name}' twice; give each "
                                "column its own name.", DataError)
            seen[name.lower()] = name
        created = [d.target for d in defines if d.kind == "assign"
                   and d.target.lower() not in seen]
        known = list(names) + list(dict.fromkeys(created))
        for statement in defines:
            if statement.kind in ("standardize", "center"):
                for name in statement.names:
                    self.check_known(name, known, statement.line, "DEFINE")
        usevariables = None
        use_option = by.get(("VARIABLE", "USEVARIABLES"))
        if use_option is not None:
            usevariables = tuple(self.check_known(n, known, use_option.line, "USEVARIABLES",
                                                  names_option)
                                 for n in self.expand(use_option, known))
        reference = list(usevariables) if usevariables else known

        def listed(option_name: str) -> list[str]:
            option = by.get(("VARIABLE", option_name))
            if option is None:
                return []
            return [self.check_known(n, known, option.line, option_name, names_option)
                    for n in self.expand(option, reference)]

        cluster_option = by.get(("VARIABLE", "CLUSTER"))
        clusters = []
        if cluster_option is not None:
            clusters = [self.check_known(n, list(names), cluster_option.line, "CLUSTER",
                                         names_option)
                        for n in self.expand(cluster_option, list(names))]
            if not clusters or len(clusters) > 2:
                raise self.fail(cluster_option.line, f"CLUSTER lists {len(clusters)} "
                                "variables; give one (two levels) or two (three levels or "
                                "cross-classified, highest level first).", DataError)
        within = listed("WITHIN")
        categorical = listed("CATEGORICAL")
        between, between_labels = self.read_between(by.get(("VARIABLE", "BETWEEN")),
                                                    known, reference, names_option)
        between_levels = {}
        for name, (label, line) in between_labels.items():
            between_levels[name] = self.between_level(label, line, clusters)
        centering = {}
        centering_option = by.get(("VARIABLE", "CENTERING"))
        if centering_option is not None:
            groups = re.findall(r"([A-Za-z]+)\s*\(([^)]*)\)", centering_option.value)
            rest = re.sub(r"([A-Za-z]+)\s*\(([^)]*)\)", "", centering_option.value).strip()
            if not groups or rest:
                raise self.fail(centering_option.line, "write CENTERING = GRANDMEAN (x1 "
                                "x2); or CENTERING = GROUPMEAN (x1);", DataError)
            for kind, listing in groups:
                found = _resolve(kind, ("GRANDMEAN", "GROUPMEAN"))
                if len(found) != 1:
                    raise self.fail(centering_option.line, f"CENTERING kind '{kind}' is "
                                    "GRANDMEAN or GROUPMEAN.", DataError)
                for token in _expand_tokens(_list_tokens(listing), reference):
                    name = self.check_known(token, known, centering_option.line, "CENTERING",
                                            names_option)
                    centering[name] = found[0].lower()
        for statement in defines:
            if statement.kind == "center":
                for name in statement.names:
                    centering[_spelled(name, known)] = statement.centering
        missing, missing_blank = self.read_missing(by.get(("VARIABLE", "MISSING")), names)
        idvariable = None
        id_option = by.get(("VARIABLE", "IDVARIABLE"))
        if id_option is not None:
            ids = self.expand(id_option, list(names))
            if len(ids) != 1:
                raise self.fail(id_option.line, "IDVARIABLE names one variable.", DataError)
            idvariable = self.check_known(ids[0], list(names), id_option.line, "IDVARIABLE",
                                          names_option)
        both = sorted({n.lower() for n in within} & {n.lower() for n in between})
        if both:
            raise self.fail(by[("VARIABLE", "WITHIN")].line, f"'{both[0]}' is on both WITHIN "
                            f"and BETWEEN (line {by[('VARIABLE', 'BETWEEN')].line}); keep "
                            "one.", DataError)
        for role, listing in (("WITHIN", within), ("BETWEEN", between),
                              ("USEVARIABLES", usevariables or [])):
            clash = [c for c in clusters if c.lower() in {n.lower() for n in listing}]
            if clash:
                raise self.fail(by[("VARIABLE", role)].line, f"the cluster variable "
                                f"'{clash[0]}' is also on {role}; remove it from {role} "
                                "(CLUSTER only says which cluster each row belongs to).",
                                DataError)
        define_pairs = tuple((d.target, d.expression) for d in defines if d.kind == "assign")
        try:
            roles = Roles(clusters=tuple(clusters), within=tuple(within),
                          between=tuple(between), between_levels=between_levels,
                          categorical=tuple(categorical), usevariables=usevariables,
                          missing=missing, centering=centering, define=define_pairs)
        except DataError as exc:
            raise self.fail(names_option.line, str(exc), DataError) from None
        return tuple(names), roles, idvariable, missing_blank

    def read_between(self, option: InpOption | None, known, reference, names_option):
        if option is None:
            return [], {}
        between, labels = [], {}
        label = None
        for match in re.finditer(r"\(\s*([^)]*?)\s*\)|[^\s()]+", option.value):
            if match.group(1) is not None:
                label = match.group(1)
                if not _NAME.fullmatch(label):
                    raise self.fail(option.line, f"BETWEEN: '({label})' should name a level: "
                                    "(level2) / (level3) or a cluster variable.", DataError)
                continue
            for token in _expand_tokens(_list_tokens(match.group()), reference):
                name = self.check_known(token, known, option.line, "BETWEEN", names_option)
                between.append(name)
                if label is not None:
                    labels[name] = (label, option.line)
        return between, labels

    def between_level(self, label: str, line: int, clusters: list[str]) -> int:
        lowered = [c.lower() for c in clusters]
        if label.lower() in lowered:
            return len(clusters) + 1 - lowered.index(label.lower())
        if label.lower() in ("level2", "level3"):
            return int(label[-1])
        raise self.fail(line, f"BETWEEN: '({label})' names no level; use (level2), (level3) "
                        f"or a cluster variable ({', '.join(clusters) or 'no CLUSTER given'}).",
                        DataError)

    def read_missing(self, option: InpOption | None, names) -> tuple[dict, bool]:
        if option is None:
            return {}, False
        value = option.value
        missing: dict[str, tuple] = {}
        blank = False
        if "(" not in value:
            for token in value.replace(",", " ").split():
                upper = token.upper()
                if upper in (".", "*"):
                    missing.setdefault("ALL", ())
                    missing["ALL"] += (upper,)
                elif upper == "BLANK":
                    blank = True
                else:
                    raise self.fail(option.line, f"MISSING: cannot read '{token}'; write "
                                    "MISSING = ALL (-999); or y1-y3 (-99); or '.' / '*' / "
                                    "BLANK.", DataError)
            return missing, blank
        pos = 0
        for match in re.finditer(r"([^()]*)\(([^)]*)\)", value):
            if value[pos:match.start()].strip():
                break
            pos = match.end()
            variables = match.group(1).strip()
            codes = []
            for token in match.group(2).replace(",", " ").split():
                if token in (".", "*"):
                    codes.append(token)
                elif _NUMBER.fullmatch(token):
                    codes.append(float(token.replace("d", "e").replace("D", "e")))
                else:
                    raise self.fail(option.line, f"MISSING: '{token}' is not a number, '.' "
                                    "or '*'.", DataError)
            if not codes:
                raise self.fail(option.line, f"MISSING: '{variables} ()' gives no code.",
                                DataError)
            if not variables:
                raise self.fail(option.line, "MISSING: name the variables before the codes: "
                                "ALL (-999) or y1-y3 (-99).", DataError)
            if variables.upper() == "ALL":
                keys = ["ALL"]
            else:
                keys = [self.check_known(n, list(names), option.line, "MISSING")
                        for n in _expand_tokens(_list_tokens(variables), list(names))]
            for key in keys:
                missing[key] = tuple(dict.fromkeys(missing.get(key, ()) + tuple(codes)))
        if value[pos:].strip():
            raise self.fail(option.line, f"MISSING: cannot read '{value[pos:].strip()}'; "
                            "write variables followed by codes in parentheses.", DataError)
        return missing, blank

    def expand(self, option: InpOption, reference: list[str] | None) -> list[str]:
        tokens = _list_tokens(option.value)
        try:
            return _expand_tokens(tokens, reference)
        except ValueError as exc:
            raise self.fail(option.line, f"{option.name}: {exc}", DataError) from None

    def check_known(self, name: str, known: list[str], line: int, where: str,
                    names_option: InpOption | None = None) -> str:
        spelled = _spelled(name, known)
        if spelled is not None:
            return spelled
        close = difflib.get_close_matches(name.lower(), [k.lower() for k in known], n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        names_line = f" (line {names_option.line})" if names_option else ""
        raise self.fail(line, f"{where} names '{name}', which is not on NAMES{names_line} "
                        f"and not made by DEFINE.{hint}", DataError)

    def read_analysis_command(self, by) -> AnalysisCommand:
        type_option = by.get(("ANALYSIS", "TYPE"))
        words = []
        if type_option is not None:
            words = [_resolve(w, _TYPE_SUPPORTED)[0] for w in type_option.value.upper().split()]
        level_words = [w for w in words if w in ("TWOLEVEL", "THREELEVEL", "CROSSCLASSIFIED")]
        if len(level_words) > 1:
            raise self.fail(type_option.line, f"TYPE names {' and '.join(level_words)}; "
                            "choose one.")
        levels = {"TWOLEVEL": 2, "THREELEVEL": 3, "CROSSCLASSIFIED": 2}.get(
            level_words[0] if level_words else "", 1)
        crossed = "CROSSCLASSIFIED" in words
        basic = "BASIC" in words
        estimator_option = by.get(("ANALYSIS", "ESTIMATOR"))
        if estimator_option is not None:
            estimator = estimator_option.value.lower()
        elif basic:
            estimator = "basic"
        elif crossed:
            estimator = "bayes"
        else:
            estimator = "mlr" if levels > 1 else "ml"
        if basic and estimator_option is not None:
            raise self.fail(estimator_option.line, f"ESTIMATOR = {estimator.upper()} "
                            f"conflicts with TYPE = {type_option.value} (line "
                            f"{type_option.line}): TYPE = BASIC computes sample statistics "
                            "without a model. Remove BASIC to fit the model, or remove "
                            "ESTIMATOR.")
        if crossed and estimator != "bayes":
            raise self.fail(estimator_option.line, f"ESTIMATOR = {estimator.upper()} "
                            f"conflicts with TYPE = CROSSCLASSIFIED (line {type_option.line}): "
                            "cross-classified models are estimated with ESTIMATOR = BAYES.")
        bayes: dict[str, object] = {}
        given = [by[("ANALYSIS", n)] for n in _BAYES_OPTIONS if ("ANALYSIS", n) in by]
        if given and estimator != "bayes":
            first = given[0]
            where = (f"ESTIMATOR = {estimator.upper()} (line {estimator_option.line})"
                     if estimator_option else f"the default estimator {estimator.upper()}")
            raise self.fail(first.line, f"{first.name} is an option of ESTIMATOR = BAYES "
                            f"and conflicts with {where}; add ESTIMATOR = BAYES or remove "
                            f"{first.name}.")
        if ("ANALYSIS", "BITERATIONS") in by:
            o = by[("ANALYSIS", "BITERATIONS")]
            match = re.fullmatch(r"(\d+)?\s*(?:\(\s*(\d+)\s*\))?", o.value)
            if not o.value or match is None:
                raise self.fail(o.line, f"BITERATIONS = {o.value!r}: write BITERATIONS = "
                                "max (min), e.g. 50000 (2000), or (min).")
            top = int(match.group(1)) if match.group(1) else 50000
            low = int(match.group(2)) if match.group(2) else 0
            if top < 1 or low > top:
                raise self.fail(o.line, f"BITERATIONS = {o.value}: the maximum must be at "
                                "least 1 and at least the minimum.")
            bayes["biterations"] = (top, low)
        for name, key, minimum in (("FBITERATIONS", "fbiterations", 2), ("THIN", "thin", 1),
                                   ("CHAINS", "chains", 1), ("BSEED", "bseed", 0)):
            if ("ANALYSIS", name) in by:
                bayes[key] = self.integer(by[("ANALYSIS", name)], minimum)
        if ("ANALYSIS", "BCONVERGENCE") in by:
            o = by[("ANALYSIS", "BCONVERGENCE")]
            if not _NUMBER.fullmatch(o.value) or not 0 < float(o.value) < 1:
                raise self.fail(o.line, f"BCONVERGENCE = {o.value!r}: give a number "
                                "between 0 and 1, e.g. 0.05.")
            bayes["bconvergence"] = float(o.value)
        if ("ANALYSIS", "POINT") in by:
            o = by[("ANALYSIS", "POINT")]
            if o.value.upper() not in ("MEDIAN", "MEAN", "MODE"):
                raise self.fail(o.line, f"POINT = {o.value!r}: use MEDIAN, MEAN or MODE.")
            bayes["point"] = o.value.lower()
        if ("ANALYSIS", "FBITERATIONS") in by and ("ANALYSIS", "BITERATIONS") in by:
            f, b = by[("ANALYSIS", "FBITERATIONS")], by[("ANALYSIS", "BITERATIONS")]
            raise self.fail(f.line, f"FBITERATIONS conflicts with BITERATIONS (line {b.line}): "
                            "give a fixed number of iterations or a maximum, not both.")
        if bayes.get("chains") == 1 and ("ANALYSIS", "BCONVERGENCE") in by:
            c, b = by[("ANALYSIS", "CHAINS")], by[("ANALYSIS", "BCONVERGENCE")]
            raise self.fail(c.line, f"CHAINS = 1 conflicts with BCONVERGENCE (line {b.line}): "
                            "the PSR convergence check compares chains and needs at least 2. "
                            "Use CHAINS = 2 or more, or remove BCONVERGENCE (and use "
                            "FBITERATIONS).")
        processors = None
        if ("ANALYSIS", "PROCESSORS") in by:
            o = by[("ANALYSIS", "PROCESSORS")]
            first = o.value.split("(")[0].strip()
            processors = self.integer(o, 1, first)
        algorithm = (by[("ANALYSIS", "ALGORITHM")].value.upper().replace(" ", "")
                     if ("ANALYSIS", "ALGORITHM") in by else None)
        return AnalysisCommand(tuple(words), levels, crossed, "RANDOM" in words, basic,
                               estimator, estimator_option is not None, bayes, processors,
                               algorithm)

    def integer(self, option: InpOption, minimum: int, value: str | None = None) -> int:
        value = option.value if value is None else value
        if not _INTEGER.fullmatch(value) or int(value) < minimum:
            raise self.fail(option.line, f"{option.name} = {value!r}: give a whole number of "
                            f"at least {minimum}.")
        return int(value)

    def check_roles_with_analysis(self, by, roles: Roles, analysis: AnalysisCommand) -> Roles:
        type_option = by.get(("ANALYSIS", "TYPE"))
        cluster_option = by.get(("VARIABLE", "CLUSTER"))
        type_text = (f"TYPE = {type_option.value} (line {type_option.line})" if type_option
                     else "the default TYPE = GENERAL")
        n_clusters = len(roles.clusters)
        if analysis.levels > 1 and not n_clusters:
            kind = "CROSSCLASSIFIED" if analysis.crossed else (
                "TWOLEVEL" if analysis.levels == 2 else "THREELEVEL")
            raise self.fail(type_option.line, f"TYPE = {kind} needs the cluster variable(s): "
                            "add CLUSTER = ...; to the VARIABLE command.")
        if n_clusters and analysis.levels == 1:
            raise self.fail(cluster_option.line, f"CLUSTER is given but {type_text} is not "
                            "multilevel; add TYPE = TWOLEVEL (or THREELEVEL / CROSSCLASSIFIED), "
                            "or remove CLUSTER.")
        if n_clusters == 2 and analysis.levels == 2 and not analysis.crossed:
            raise self.fail(cluster_option.line, f"CLUSTER lists two variables but "
                            f"{type_text} has two levels; use TYPE = THREELEVEL (nested) or "
                            "CROSSCLASSIFIED, or give one cluster variable.")
        if n_clusters == 1 and (analysis.levels == 3 or analysis.crossed):
            raise self.fail(cluster_option.line, f"{type_text} needs two cluster variables on "
                            "CLUSTER (highest level first); found one.")
        if analysis.levels == 1:
            for role in ("WITHIN", "BETWEEN"):
                if ("VARIABLE", role) in by:
                    raise self.fail(by[("VARIABLE", role)].line, f"{role} needs a multilevel "
                                    "analysis: add TYPE = TWOLEVEL and CLUSTER, or remove "
                                    f"{role}.")
        groupmean = [n for n, k in roles.centering.items() if k == "groupmean"]
        if groupmean and analysis.levels == 1:
            option = by.get(("VARIABLE", "CENTERING"))
            raise self.fail(option.line if option else None, f"GROUPMEAN centering of "
                            f"'{groupmean[0]}' needs clusters: add TYPE = TWOLEVEL and "
                            "CLUSTER, or use GRANDMEAN.")
        if groupmean and analysis.crossed:
            option = by.get(("VARIABLE", "CENTERING"))
            raise self.fail(option.line if option else None, "GROUPMEAN centering is "
                            "ambiguous in a cross-classified model (which cluster's mean?); "
                            "use DEFINE: xc = x - CLUSTER_MEAN(x, ...); instead.")
        for name, level in roles.between_levels.items():
            if level > 1 + n_clusters or (analysis.crossed and level > 3):
                option = by[("VARIABLE", "BETWEEN")]
                raise self.fail(option.line, f"BETWEEN puts '{name}' on level {level}, but "
                                f"the model has {analysis.levels} levels.", DataError)
        return replace(roles, crossed=analysis.crossed)

    def read_savedata(self, by) -> dict[str, object]:
        savedata: dict[str, object] = {}
        for name in ("FILE", "BPARAMETERS"):
            option = by.get(("SAVEDATA", name))
            if option is not None:
                written = _file_name(option.raw)
                if not written:
                    raise self.fail(option.line, f"SAVEDATA {name} has no file name.",
                                    DataError)
                savedata[name] = self.resolve_path(written)
        option = by.get(("SAVEDATA", "SAVE"))
        if option is not None:
            match = re.fullmatch(r"([A-Za-z]+)\s*(?:\(\s*(\d+)(?:\s+(\d+))?\s*\))?",
                                 option.value)
            if match is None:
                raise self.fail(option.line, f"SAVE = {option.value!r}: write SAVE = FSCORES "
                                "(100); (draws, and optionally a thinning interval).")
            savedata["SAVE"] = {"FSCORES": tuple(int(g) for g in match.groups()[1:] if g)}
            if "FSCORES" in savedata["SAVE"] and "FILE" not in savedata:
                raise self.fail(option.line, "SAVE = FSCORES needs SAVEDATA FILE = name;",
                                DataError)
        return savedata


# ----------------------------------------------------------------------------- helpers

def _command_name(first: str, second: str | None, *, strict: bool) -> str | None:
    """The command a header line names, or None when the line is not a header."""
    def match(word: str, choices: Sequence[str]) -> list[str]:
        word = word.upper()
        if word in choices:
            return [word]
        return [] if strict or len(word) < 4 else [c for c in choices if c.startswith(word)]

    found = match(first, _COMMANDS)
    if len(found) != 1:
        return None
    if not second:
        return found[0]
    subs = _SUBCOMMANDS.get(found[0])
    if subs is None:
        return None
    sub = match(second, subs)
    if len(sub) == 1:
        return f"{found[0]} {sub[0]}"
    return None if strict else f"{found[0]} {second.upper()}"


def _resolve(written: str, candidates: Sequence[str]) -> list[str]:
    """Full names ``written`` stands for: itself, else those it is a prefix of (at least
    four letters, as Mplus allows)."""
    word = written.upper()
    if word in candidates:
        return [word]
    if len(word) < 4:
        return []
    return list(dict.fromkeys(c for c in candidates if c.startswith(word)))


def _list_tokens(value: str) -> list[str]:
    """Names and ranges of a variable list (``y1-y3`` and ``y1 - y3`` are one range)."""
    value = re.sub(r"\s*-\s*", "-", value.replace(",", " "))
    return value.split()


def _expand_tokens(tokens: list[str], reference: list[str] | None) -> list[str]:
    """Expand ``a-b`` ranges: by position in ``reference`` when both ends are on it, else
    by numeric suffix (``y1-y6``). Raises ValueError for a range that is neither."""
    from jaxsem.syntax.expressions import expand_label_range  # noqa: PLC0415

    out = []
    lowered = [r.lower() for r in reference] if reference is not None else []
    for token in tokens:
        if "-" not in token:
            if not _NAME.fullmatch(token):
                raise ValueError(f"'{token}' is not a variable name")
            out.append(token)
            continue
        first, _, last = token.partition("-")
        if reference is not None and first.lower() in lowered and last.lower() in lowered:
            i, j = lowered.index(first.lower()), lowered.index(last.lower())
            if i > j:
                raise ValueError(f"the range '{token}' runs backwards in the variable order")
            out.extend(reference[i:j + 1])
            continue
        expanded = expand_label_range(first, last)
        if expanded is None:
            raise ValueError(f"cannot expand the range '{token}'; a range reads like y1-y6 "
                             "(same name, ascending numbers) or names two variables of the "
                             "list it refers to")
        out.extend(expanded)
    return out


def _spelled(name: str, known: Sequence[str]) -> str | None:
    """``name`` as spelled in ``known`` (case-insensitive), or None."""
    for candidate in known:
        if candidate.lower() == name.lower():
            return candidate
    return None


def _file_name(raw: str) -> str:
    """A FILE value: quotes removed; a name split over lines is joined."""
    raw = raw.strip()
    if raw[:1] in ('"', "'"):
        quote = raw[0]
        end = raw.find(quote, 1)
        inner = raw[1:end] if end > 0 else raw[1:]
        pieces = inner.split("\n")
        return "".join([pieces[0].rstrip()] + [p.strip() for p in pieces[1:]]) \
            if len(pieces) > 1 else inner
    return "".join(part.strip() for part in raw.split("\n"))


def _first_row_width(path: Path) -> tuple[int | None, int]:
    """Number of fields on the first non-blank line of a free-format file, and the line."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.decode("utf-8-sig", errors="replace").strip()
            if line:
                return len(re.split(r"\s*,\s*|\s+", line)), number
    return None, 0


class _in_file:
    """Context manager: a JaxsemError raised inside gets ``source`` in front, and the line
    of the option it names when ``lines`` (option name -> line) says where that is."""

    def __init__(self, source: str, lines: Mapping[str, int] | None = None):
        self.source = source
        self.lines = lines or {}

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, traceback):
        if exc is None or not isinstance(exc, JaxsemError):
            return False
        message = str(exc)
        if message.startswith(self.source):
            return False
        located = copy.copy(exc)
        line = None if message.startswith("line ") else _line_named(message, self.lines)
        if message.startswith("line "):
            text = f"{self.source}, {message}"
        elif line is not None:
            text = f"{self.source}, line {line}: {message}"
        else:
            text = f"{self.source}: {message}"
        located.args = (text,)
        raise located from None


_DATA_ERROR_OPTIONS = ("BETWEEN", "WITHIN", "CATEGORICAL", "CENTERING", "GROUPMEAN",
                       "GRANDMEAN", "USEVARIABLES", "MISSING", "CLUSTER")


def _line_named(message: str, lines: Mapping[str, int]) -> int | None:
    """The line of the DEFINE statement or VARIABLE option a data message names."""
    define = re.match(r"DEFINE ([A-Za-z_][A-Za-z0-9_]*) =", message)
    if define and f"DEFINE {define.group(1).lower()}" in lines:
        return lines[f"DEFINE {define.group(1).lower()}"]
    if re.match(r"cluster variable", message):
        return lines.get("CLUSTER")
    for name in _DATA_ERROR_OPTIONS:
        if re.search(rf"\b{name}\b", message) and name in lines:
            return lines[name]
        if name in ("GROUPMEAN", "GRANDMEAN") and name in message and "CENTERING" in lines:
            return lines["CENTERING"]
    return None
