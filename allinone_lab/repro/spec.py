"""What a reproduction is: its parameters, the context its ``run`` receives, and the result it returns.

A reproduction re-runs one table or figure of the paper at a chosen ``scale``:

- ``smoke``: seconds, on the built-in corpus;
- ``cpu``: minutes on two CPU cores, on the built-in corpus;
- ``rehearsal``: the ``paper`` path with its budget cut (about a minute on two CPU cores), on the prepared
  datasets under ``data_root``, or without one on release-format fixtures built from sample clips (CI
  executes every notebook at this scale);
- ``paper``: the paper's settings (``train.presets.preset("paper")``) on the prepared datasets under
  ``data_root``.

Every reproduction takes :data:`COMMON_PARAMS` (scale, data_root, output_dir, seed, device) plus its own
knobs. :func:`check_parameters` validates and types the values a notebook passes; a bad value raises
:class:`ParameterError` naming the parameter, the value and what was expected.
"""

from __future__ import annotations

import ast
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .. import loading
from ..train.presets import PAPER_SCALES, PRESETS, Experiment
from ..train.runs import experiment as scale_experiment

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class ParameterError(ValueError):
    """A reproduction parameter is unknown, missing or has a value of the wrong type or range."""


class ReadyToRun(Exception):  # noqa: N818  (a signal, not an error)
    """Raised in check-only mode (``Context.check_only``) once a reproduction's preflight has passed: it
    would now start its work."""


_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


@dataclass(frozen=True)
class Param:
    """One knob of a reproduction: a name, a type (``int``, ``float``, ``str`` or ``bool``), a default and
    optionally the allowed values. A ``None`` default means the parameter is optional (None allowed)."""

    name: str
    kind: type
    default: Any
    choices: tuple | None = None
    help: str = ""
    bounds: tuple[float, float] | None = None  # inclusive range of a number

    def __post_init__(self) -> None:
        if self.kind not in (int, float, str, bool):
            raise TypeError(f"Param {self.name!r}: kind must be int, float, str or bool, not {self.kind!r}")
        if self.bounds is not None and self.kind not in (int, float):
            raise TypeError(f"Param {self.name!r}: bounds apply to int or float parameters only")
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.convert(c, "") for c in self.choices))
        if self.default is not None:
            object.__setattr__(self, "default", self.convert(self.default, ""))

    def expected(self) -> str:
        text = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}[self.kind]
        if self.choices is not None:
            text = f"one of {list(self.choices)}"
        if self.bounds is not None:
            text += f" in [{self.bounds[0]}, {self.bounds[1]}]"
        if self.default is None:
            text += " or None"
        return text

    def convert(self, value: Any, reproduction: str) -> Any:
        """``value`` as ``kind`` (numbers and booleans also from their text form, as on a command line)."""

        def bad() -> ParameterError:
            where = f"{reproduction}: " if reproduction else ""
            return ParameterError(f"{where}parameter {self.name}={value!r}: expected {self.expected()}")

        if value is None:
            if self.default is None:
                return None
            raise bad()
        kind = self.kind
        if kind is bool:
            if isinstance(value, bool):
                out = value
            elif isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
                out = value.strip().lower() in _TRUE
            else:
                raise bad()
        elif kind is int:
            if isinstance(value, bool):
                raise bad()
            if isinstance(value, int):
                out = value
            elif isinstance(value, float) and value.is_integer():
                out = int(value)
            elif isinstance(value, str):
                try:
                    out = int(value.strip())
                except ValueError:
                    raise bad() from None
            else:
                raise bad()
        elif kind is float:
            if isinstance(value, bool):
                raise bad()
            try:
                out = float(value) if isinstance(value, (int, float, str)) else None
            except ValueError:
                raise bad() from None
            if out is None or not math.isfinite(out):
                raise bad()
        else:
            if not isinstance(value, str):
                raise bad()
            out = value
        if self.choices is not None and out not in self.choices:
            raise bad()
        if self.bounds is not None and not self.bounds[0] <= out <= self.bounds[1]:
            raise bad()
        return out


COMMON_PARAMS: tuple[Param, ...] = (
    Param("scale", str, "cpu", PRESETS, "smoke: seconds; cpu: minutes on 2 CPU cores; rehearsal: the paper path "
          "cut to a minute; paper: the paper's settings"),
    Param("data_root", str, None, help="a directory of prepared datasets; None: the built-in corpus (rehearsal: "
          "release-format fixtures)"),
    Param("output_dir", str, "results", help="where results.json, run directories and figures go"),
    Param("seed", int, 0, help="seed of every random number generator"),
    Param("device", str, "auto", help="auto (cuda if available, else cpu), cpu, cuda or cuda:N"),
)
COMMON_NAMES = tuple(p.name for p in COMMON_PARAMS)


@dataclass
class Result:
    """What a reproduction measured.

    ``metrics``: headline numbers; ``rows``: measured rows keyed like the paper's rows (e.g.
    ``{"ratio": 0.25, "MC": 61.2}``) so that :func:`repro.show` can put them side by side; ``notes``:
    what differs from the paper's setting. ``run_reproduction`` fills in the rest.
    """

    metrics: dict[str, float]
    rows: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    name: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    wall_seconds: float | None = None
    peak_memory_mb: float | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None  # the results.json it was written to or read from

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["path"] = None if self.path is None else str(self.path)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any], path: str | Path | None = None) -> Result:
        names = {f.name for f in dataclasses.fields(cls)}
        kept = {k: v for k, v in values.items() if k in names and k != "path"}
        for required in ("metrics", "rows"):
            if required not in kept:
                where = f"{path}: " if path else ""
                raise ValueError(f"{where}a results file needs the field {required!r}")
        return cls(**kept, path=None if path is None else Path(path))


@dataclass(frozen=True)
class Headline:
    """A column of a reproduction's rows that carries its table's claim, as a sweep plots it: ``label`` in
    words (with its unit), the level of ``chance`` (a number, or the name of the metric holding it) and its
    legend ``chance_label``, and ``paper``, the paper's column to draw beside it (where the paper measured
    that quantity)."""

    column: str
    label: str
    chance: float | str | None = None
    paper: str | None = None
    chance_label: str = "chance"

    def chance_in(self, metrics: dict[str, Any]) -> float | None:
        value = metrics.get(self.chance) if isinstance(self.chance, str) else self.chance
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


@dataclass
class Reproduction:
    """One table or figure of the paper: its knobs and the function that measures it.

    ``run(params, ctx) -> Result``; ``paper_key`` names the paper's numbers in :mod:`repro.paper`
    (default: ``name``); ``plot(result) -> Figure`` draws the figure where the paper has one;
    ``headline``: the row columns that carry the claim, which a sweep over its parameters plots.
    """

    name: str
    title: str
    params: tuple[Param, ...]
    run: Callable[[dict[str, Any], Context], Result]
    paper_key: str | None = None
    plot: Callable[[Result], Figure] | None = None
    reads_data: bool = True  # False: measures models only (no dataset, no training), ready anywhere
    headline: tuple[Headline, ...] = ()

    def __post_init__(self) -> None:
        self.params = tuple(self.params)
        clash = [p.name for p in self.params if p.name in COMMON_NAMES]
        if clash:
            raise ValueError(f"reproduction {self.name!r}: parameters {clash} are common to all; do not redeclare")
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"reproduction {self.name!r}: duplicate parameter names in {names}")
        if self.paper_key is None:
            self.paper_key = self.name

    @property
    def all_params(self) -> tuple[Param, ...]:
        """Common parameters (``output_dir`` defaulting to ``results/<name>``) and then the reproduction's."""
        common = tuple(
            dataclasses.replace(p, default=f"results/{self.name}") if p.name == "output_dir" else p
            for p in COMMON_PARAMS
        )
        return common + self.params

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.all_params}


REPRODUCTIONS: dict[str, Reproduction] = {}


def register(reproduction: Reproduction) -> Reproduction:
    """Add ``reproduction`` to :data:`REPRODUCTIONS` (a name can be registered once)."""
    if reproduction.name in REPRODUCTIONS and REPRODUCTIONS[reproduction.name] is not reproduction:
        raise ValueError(f"a reproduction named {reproduction.name!r} is already registered")
    REPRODUCTIONS[reproduction.name] = reproduction
    return reproduction


def get(name: str) -> Reproduction:
    if name not in REPRODUCTIONS:
        raise ParameterError(f"unknown reproduction {name!r}; expected one of {sorted(REPRODUCTIONS)}")
    return REPRODUCTIONS[name]


PAPERMILL_CELL = "# Parameters"  # the first line of the cell papermill injects for ``-p NAME VALUE``


def _assigned(source: str) -> list[str]:
    """The names a cell's top-level assignments bind (``a = 1``, ``a: int = 1``)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] \
            if isinstance(node, ast.AnnAssign) else []
        names += [t.id for t in targets if isinstance(t, ast.Name)]
    return names


def notebook_parameters() -> tuple[list[str], list[str]] | None:
    """``(declared, passed)`` in the running notebook kernel: the names its ``parameters`` cell assigns and
    the names papermill injected (``-p NAME VALUE``); None outside a kernel or when papermill passed
    nothing. Read from the kernel's input history, where papermill's injected cell directly follows the
    notebook's parameters cell."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    history = shell.user_ns.get("In", []) if shell is not None else []
    for i in range(len(history) - 1, 0, -1):
        if isinstance(history[i], str) and history[i].lstrip().startswith(PAPERMILL_CELL):
            return _assigned(history[i - 1]), _assigned(history[i])
    return None


def check_notebook_parameters(notebook: str = "this notebook", declared: list[str] | None = None) -> None:
    """Refuse, before any work, a parameter papermill passed (``-p NAME VALUE``) that the notebook does not
    declare: papermill itself only warns and runs with the default. ``declared``: the names allowed (default:
    those the notebook's ``parameters`` cell assigns). Does nothing outside papermill."""
    found = notebook_parameters()
    if found is None:
        return
    in_cell, passed = found
    declared = in_cell if declared is None else list(declared)
    unknown = [name for name in passed if name not in declared]
    if unknown:
        raise ParameterError(f"{notebook}: unknown parameter(s) {unknown} (papermill -p); it declares "
                             f"{declared}")


def check_parameters(name: str, **values: Any) -> dict[str, Any]:
    """The parameters of reproduction ``name``, validated and typed, defaults filled in.

    Raises :class:`ParameterError` for an unknown parameter (in ``values``, or one papermill injected into
    the notebook running this: :func:`check_notebook_parameters`) or a value of the wrong type, out of its
    choices, or a ``device`` torch cannot parse.
    """
    reproduction = get(name)
    params = {p.name: p for p in reproduction.all_params}
    check_notebook_parameters(f"reproductions/{name}.ipynb", list(params))
    unknown = sorted(set(values) - set(params))
    if unknown:
        raise ParameterError(f"{name}: unknown parameter(s) {unknown}; expected some of {list(params)}")
    out = {key: p.convert(values[key], name) if key in values else p.default for key, p in params.items()}
    device = out["device"]
    if device != "auto":
        try:
            parsed = torch.device(device)
        except (RuntimeError, ValueError):
            parsed = None
        if parsed is None or parsed.type not in ("cpu", "cuda", "mps"):
            raise ParameterError(f"{name}: parameter device={device!r}: expected auto, cpu, cuda, cuda:N or mps")
    return out


def resolve_device(device: str) -> torch.device:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; a requested GPU must exist. The rule is
    :func:`allinone_lab.loading.resolve_device`'s; here a bad value is a :class:`ParameterError`."""
    try:
        return loading.resolve_device(device)
    except ValueError as error:
        raise ParameterError(f"parameter {error}") from None


@dataclass
class Context:
    """What a reproduction's ``run`` receives besides its parameters."""

    params: dict[str, Any]
    device: torch.device
    scale: str
    output_dir: Path
    seed: int = 0
    data_root: str | None = None
    progress: bool = False

    fixture_weights: Path | None = None  # rehearsal on fixtures: where stand-in timm weight files go
    check_only: bool = False  # stop with ReadyToRun once the preflight has passed (``repro check``)

    def ready(self) -> None:
        """Called where a reproduction's preflight has passed and its work starts: creates ``output_dir``
        (or, in check-only mode, stops with :class:`ReadyToRun`)."""
        if self.check_only:
            raise ReadyToRun()
        self.output_dir.mkdir(parents=True, exist_ok=True)

    def preflight(self, runs: list[tuple[Experiment, Path, list, dict[str, Any]]]) -> None:
        """Check every run a reproduction will make before any of them starts: ``jobs.preflight`` of each
        ``(experiment, run directory, data needs, options)``; one
        :class:`~allinone_lab.train.preflight.PreflightError` lists every problem of all of them. Then
        :meth:`ready`."""
        from ..train import jobs
        from ..train.preflight import PreflightError

        problems: list[str] = []
        for exp, run_dir, needs, options in runs:
            try:
                jobs.preflight(exp, run_dir, needs, **options)
            except PreflightError as error:
                problems += [p for p in error.problems if p not in problems]
        if problems:
            raise PreflightError(problems)
        self.ready()

    @property
    def paper_protocol(self) -> bool:
        """Whether this scale runs the paper's protocol on prepared datasets (``rehearsal``, ``paper``)."""
        return self.scale in PAPER_SCALES

    def experiment(self, variant: str | None = None, **overrides: Any) -> Experiment:
        """The ``scale`` preset (``variant`` picks the backbone at ``rehearsal`` and ``paper`` scale) with this
        context's seed, data root and device applied, then the dotted ``overrides``
        (``{"model.roll_ratio": 0.5}``), by :func:`allinone_lab.train.runs.experiment`. A rehearsal on
        fixtures initialises from stand-in weight files."""
        context = {"train.seed": self.seed, "train.device": str(self.device), "data_root": self.data_root}
        exp = scale_experiment(self.scale, variant if self.paper_protocol else None, **{**context, **overrides})
        if self.fixture_weights is not None and exp.model.init != "scratch" and exp.model.init_file is None:
            from ..model.pretrained import timm_tag, write_timm_weights

            tag = timm_tag(exp.model)
            path = self.fixture_weights / f"{tag}.safetensors"
            if not path.is_file():
                write_timm_weights(tag, path)
            exp = exp.override(**{"model.init_file": str(path)})
        return exp

    def run_path(self, name: str) -> Path:
        """``output_dir/runs/<scale>/<name>`` (``runs/<scale>-seed<N>/<name>`` for a seed other than 0):
        checkpoints and logs of one training run, apart for each scale and seed so that those runs never share
        a directory (not created: see :meth:`run_dir`). A run directory resumes only with the configuration it
        records (:mod:`allinone_lab.train.rundir`)."""
        return self.output_dir / "runs" / (self.scale if self.seed == 0 else f"{self.scale}-seed{self.seed}") / name

    def run_dir(self, name: str) -> Path:
        """:meth:`run_path`, created."""
        path = self.run_path(name)
        path.mkdir(parents=True, exist_ok=True)
        return path
