"""Reproductions of the paper's tables and figures, one notebook each in ``reproductions/``.

    from allinone_lab import repro
    params = repro.check_parameters("table8b", ratio=0.25, scale="cpu")
    result = repro.run_reproduction("table8b", params)   # writes output_dir/results.json
    repro.show(result)                                   # paper numbers beside the measured ones

Each reproduction is registered in one module: ``model_tables`` (Table 1, 14, Fig. 3, 7), ``ablations``
(Tables 6, 8-11, Fig. 9), ``downstream`` (Tables 2-5, 7, 12, 13) and ``figures`` (Fig. 4, 6). The command line
``python -m allinone_lab.repro`` runs sweeps over notebook parameters and compiles reports.
"""

from . import ablations, downstream, figures, model_tables, paper  # noqa: E402,F401  (register the reproductions)
from .run import (
    RESULT_FIELDS,
    RESULTS_FILE,
    configure_threads,
    load_result,
    run_reproduction,
    seed_everything,
)
from .show import Markdown, plot, show
from .spec import (
    COMMON_PARAMS,
    REPRODUCTIONS,
    Context,
    Param,
    ParameterError,
    Reproduction,
    Result,
    check_notebook_parameters,
    check_parameters,
    register,
    resolve_device,
)

__all__ = [
    "COMMON_PARAMS",
    "REPRODUCTIONS",
    "RESULTS_FILE",
    "RESULT_FIELDS",
    "Context",
    "Markdown",
    "Param",
    "ParameterError",
    "Reproduction",
    "Result",
    "check_notebook_parameters",
    "check_parameters",
    "configure_threads",
    "load_result",
    "paper",
    "plot",
    "register",
    "resolve_device",
    "run_reproduction",
    "seed_everything",
    "show",
]
