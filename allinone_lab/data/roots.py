"""Where a run finds its datasets: one ``data_root`` holding one prepared dataset or several.

A prepared dataset is a directory with the ``manifest.json`` that ``python -m allinone_lab.data.prepare``
writes (its ``dataset`` field names it). A run that trains on one dataset and evaluates on others (the
paper's pre-training ablations: pre-train on WebVid + HowTo100M, score zero-shot multiple choice on LSMDC
and MSR-VTT) points ``data_root`` at a directory whose immediate sub-directories are prepared datasets;
each is found by its manifest, whatever the sub-directory is called::

    ROOT/webvid/manifest.json     ROOT/howto100m/manifest.json
    ROOT/lsmdc/manifest.json      ROOT/msrvtt-mc/manifest.json   ...

A ``data_root`` that is itself a prepared dataset still works as before (it holds that one dataset).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"


def _known() -> set[str]:
    from .registry import DATASETS

    return set(DATASETS) | {"corpus"}


def read_manifest(root: str | Path) -> dict[str, Any]:
    """``root/manifest.json`` of a prepared dataset, checked: a dict whose ``dataset`` is a known name."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"data_root {str(root)!r} is not a directory; expected a dataset prepared by "
            f"`python -m allinone_lab.data.prepare <dataset> --out {root}` (docs/data.md)"
        )
    path = root / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"data_root {str(root)!r} has no manifest.json; expected the manifest that "
            f"`python -m allinone_lab.data.prepare <dataset> --out {root}` writes (it names the dataset)"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error
    name = manifest.get("dataset") if isinstance(manifest, dict) else None
    if name not in _known():
        raise ValueError(f"{path}: dataset={name!r}; expected one of {sorted(_known())}")
    return manifest


def find_datasets(data_root: str | Path) -> dict[str, Path]:
    """Every prepared dataset under ``data_root``: ``{name: directory}``.

    ``data_root`` itself when it has a manifest; else each immediate sub-directory with one. Two
    sub-directories that hold the same dataset are an error (which one a run would use is ambiguous)."""
    root = Path(data_root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"data_root {str(root)!r} is not a directory; expected a prepared dataset, or a directory of "
            f"prepared datasets (`python -m allinone_lab.data.prepare <dataset> --out {root}/<dataset>`)"
        )
    if (root / MANIFEST).is_file():
        return {read_manifest(root)["dataset"]: root}
    found: dict[str, Path] = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and (p / MANIFEST).is_file()):
        name = read_manifest(sub)["dataset"]
        if name in found:
            raise ValueError(f"data_root {str(root)!r}: {str(found[name])!r} and {str(sub)!r} both hold {name!r}; "
                             f"keep one")
        found[name] = sub
    return found


def dataset_root(data_root: str | Path, name: str) -> Path:
    """The directory of dataset ``name`` under ``data_root``, or an error that lists what is there and
    gives the command that prepares ``name``."""
    found = find_datasets(data_root)
    if name in found:
        return found[name]
    held = ", ".join(f"{k} ({v})" for k, v in sorted(found.items())) or "no prepared dataset"
    if (Path(data_root) / MANIFEST).is_file():
        raise FileNotFoundError(
            f"data_root {str(data_root)!r} is itself the prepared dataset {held} and has no prepared {name!r}; "
            f"for several datasets point data_root at a directory holding each in a sub-directory (e.g. "
            f"{Path(data_root).parent / name}, prepared by `python -m allinone_lab.data.prepare {name} --out "
            f"{Path(data_root).parent / name} ...`, beside {data_root})"
        )
    raise FileNotFoundError(
        f"data_root {str(data_root)!r} has no prepared {name!r} (it holds {held}); prepare it with "
        f"`python -m allinone_lab.data.prepare {name} --out {Path(data_root) / name} ...` (docs/data.md)"
    )


def single_dataset(data_root: str | Path) -> tuple[str, Path]:
    """``(name, directory)`` when ``data_root`` holds exactly one prepared dataset; else an error asking
    for a dataset name."""
    found = find_datasets(data_root)
    if len(found) == 1:
        return next(iter(found.items()))
    if not found:
        raise FileNotFoundError(
            f"data_root {str(data_root)!r} has no manifest.json, nor a sub-directory with one; expected a dataset "
            f"prepared by `python -m allinone_lab.data.prepare <dataset> --out {data_root}` (it names the "
            f"dataset), or a directory of such datasets (docs/data.md)"
        )
    raise ValueError(f"data_root {str(data_root)!r} holds {sorted(found)}: name the dataset to use")
