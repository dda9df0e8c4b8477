"""Several pre-training pair datasets mixed in stated proportions (e.g. WebVid + HowTo100M, + YT-Temporal).

:class:`MixtureDataset` gives one training run a fixed share of every source per epoch whatever the sources'
sizes: 50% WebVid and 50% HowTo100M means half the items of every epoch come from each, a small source
being repeated and a large one sub-sampled. Which items are used is a pure function of
``(seed, epoch, mixture index)``, like the randomness of :class:`~allinone_lab.data.datasets.VideoDataset`, so
the :class:`~allinone_lab.train.sampler.ResumableSampler` resumes exactly and data-parallel processes agree.

Per-epoch sampling rule, for a source of ``n`` items that gets ``c`` items per epoch (``q, t = divmod(c, n)``):

* every item of the source is used ``q`` times, and ``t`` further distinct items are added, so within an
  epoch every item appears ``q`` or ``q + 1`` times (a small source repeats evenly; a large one, ``q = 0``,
  is sub-sampled without repeats);
* the ``t`` extra items walk through a seeded permutation of the source: epochs are grouped into rounds of
  ``m = ceil(n / t)`` epochs; round ``r = epoch // m`` uses the permutation seeded by
  ``(seed, crc32(source name), r)`` and epoch ``j = epoch % m`` of the round takes its positions
  ``j*t ... j*t + t - 1`` (modulo ``n``: the last epoch of a round wraps to the round's first items). Over a
  round every item is used once before a new permutation starts, so consecutive epochs of a large source see
  fresh items, and the extras of a small source rotate evenly;
* seeding by the source's name (not its position) keeps a source's items unchanged when another source is
  added to or removed from the mixture.

Mixture indices interleave the sources smoothly (item ``j`` of a source with ``c`` items sits at the fraction
``(j + 0.5) / c`` of the epoch, ties in the order of ``sources``): with equal shares the sources alternate.
"""

from __future__ import annotations

import logging
import math
import numbers
import operator
import zlib
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

log = logging.getLogger("allinone_lab.data")

_STREAM = 0x4D49585F  # separates the mixture's random stream from those of the sources


def _index_dtype(bound: int) -> type[np.signedinteger]:
    """The smallest of int32/int64 that holds ``0 .. bound`` (the map is ``length`` entries long)."""
    return np.int32 if bound < 2**31 else np.int64


def _largest_remainder(weights: list[Fraction], total: int) -> list[int]:
    """Integer counts proportional to ``weights`` summing exactly to ``total`` (largest remainders first,
    ties in list order). Exact rational arithmetic, so the result never depends on float rounding."""
    norm = sum(weights)
    quotas = [w * total / norm for w in weights]
    counts = [math.floor(q) for q in quotas]
    short = total - sum(counts)
    by_remainder = sorted(range(len(weights)), key=lambda k: (-(quotas[k] - counts[k]), k))
    for k in by_remainder[:short]:
        counts[k] += 1
    return counts


class MixtureDataset(Dataset):
    """Items from several datasets in fixed proportions per epoch (see the module docstring for the rule).

    Args:
        sources: name -> dataset (e.g. ``{"webvid": PairsDataset(...), "howto100m": PairsDataset(...)}``);
            their order breaks interleaving ties.
        weights: name -> non-negative proportion, the same keys as ``sources``; normalised, at least one
            positive. A zero weight keeps a source out of the epochs (it still gets ``set_epoch``).
        length: items per epoch; default the sum of the sources' lengths.
        seed: selects which items of each source an epoch uses (the sources keep their own seeds).

    ``mixture[i]`` is the source's item (a dict) with ``"source"`` (the source's name) added; its ``"index"``,
    if any, stays the row within that source (:meth:`locate` maps a mixture index to ``(name, row)``).
    :func:`~allinone_lab.data.datasets.collate` keeps ``"source"`` as a list of names.

    A source item repeated within an epoch (a source smaller than its share) comes out identical each time,
    because a source's randomness is a function of ``(seed, epoch, row)``. Call :meth:`set_epoch` before a
    ``DataLoader`` is created (the training loop does), so workers copy the current epoch's map. The map takes
    about 10 bytes per item of ``length``; building it draws one permutation of each used source.
    """

    def __init__(
        self,
        sources: Mapping[str, Dataset],
        weights: Mapping[str, float],
        length: int | None = None,
        seed: int = 0,
    ) -> None:
        if not isinstance(sources, Mapping) or not sources:
            raise ValueError(
                f"MixtureDataset: sources={sources!r}; expected a non-empty mapping name -> dataset"
            )
        if not isinstance(weights, Mapping):
            raise ValueError(f"MixtureDataset: weights={weights!r}; expected a mapping name -> proportion")
        for name in sources:
            if not isinstance(name, str) or not name:
                raise ValueError(
                    f"MixtureDataset: sources key {name!r}; expected a non-empty string (a name)"
                )
        for name in sources:
            if name not in weights:
                raise ValueError(
                    f"MixtureDataset: weights lacks key {name!r}; expected the keys of sources {list(sources)}"
                )
        for name in weights:
            if name not in sources:
                raise ValueError(
                    f"MixtureDataset: weights has key {name!r}, which is not a source; expected the keys of "
                    f"sources {list(sources)}"
                )
        if len(sources) > np.iinfo(np.int16).max:
            raise ValueError(
                f"MixtureDataset: {len(sources)} sources; expected at most {np.iinfo(np.int16).max}"
            )
        fractions: list[Fraction] = []
        for name in sources:
            w = weights[name]
            if isinstance(w, bool) or not isinstance(w, numbers.Real) or not math.isfinite(w) or w < 0:
                raise ValueError(
                    f"MixtureDataset: weights[{name!r}] = {w!r}; expected a finite non-negative number"
                )
            fractions.append(Fraction(w) if isinstance(w, numbers.Rational) else Fraction(float(w)))
        if not any(fractions):
            raise ValueError(f"MixtureDataset: weights {dict(weights)!r} are all zero; expected one positive")
        sizes = [len(ds) for ds in sources.values()]
        for name, w, n in zip(sources, fractions, sizes, strict=True):
            if w > 0 and n == 0:
                raise ValueError(
                    f"MixtureDataset: source {name!r} has weights[{name!r}] = {weights[name]!r} but no items; "
                    f"expected a non-empty dataset or weight 0"
                )
        if length is None:
            length = sum(sizes)
        elif isinstance(length, bool) or not isinstance(length, numbers.Integral):
            raise ValueError(f"MixtureDataset: length={length!r}; expected a positive integer or None")
        length = int(length)
        if length < 1:
            raise ValueError(
                f"MixtureDataset: length={length}; expected a positive integer (items per epoch)"
            )
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise ValueError(f"MixtureDataset: seed={seed!r}; expected an integer")

        self.sources: dict[str, Dataset] = dict(sources)
        self.names: list[str] = list(sources)
        self.sizes: dict[str, int] = dict(zip(self.names, sizes, strict=True))
        norm = sum(fractions)
        self.weights: dict[str, float] = {
            n: float(f / norm) for n, f in zip(self.names, fractions, strict=True)
        }
        self.length = length
        self.seed = int(seed)
        self.epoch = 0
        self._counts = dict(zip(self.names, _largest_remainder(fractions, length), strict=True))
        self._keys = [zlib.crc32(name.encode("utf-8")) for name in self.names]

        # The interleaving does not change between epochs (the counts do not): computed once.
        counts = [self._counts[n] for n in self.names]
        position = np.concatenate([(np.arange(c, dtype=np.float64) + 0.5) / c for c in counts if c])
        code = np.concatenate([np.full(c, k, dtype=np.int16) for k, c in enumerate(counts) if c])
        order = np.argsort(position, kind="stable")  # ties: concatenation order = order of `sources`
        self._order = order.astype(_index_dtype(length))
        self._source = code[order]  # (length,) source number of every mixture index
        self._row = np.empty(0, dtype=np.int64)  # (length,) row within the source, set by set_epoch
        self.set_epoch(0)

    # ---- the per-epoch map -------------------------------------------------------------------------------

    def _rows(self, k: int, epoch: int) -> np.ndarray:
        """Rows of source ``k`` used in ``epoch`` (the rule of the module docstring), ``(count,)``."""
        name = self.names[k]
        n, c = self.sizes[name], self._counts[name]
        dtype = _index_dtype(n)
        if c == 0:
            return np.empty(0, dtype=dtype)
        q, t = divmod(c, n)
        if t:
            m = -(-n // t)
            round_, j = divmod(epoch, m)
        else:
            round_, j = epoch, 0
        perm = np.random.default_rng([self.seed, self._keys[k], round_, _STREAM]).permutation(n).astype(dtype)
        parts = [np.tile(perm, q)] if q else []
        if t:
            parts.append(perm[(j * t + np.arange(t, dtype=np.int64)) % n])
        return np.concatenate(parts)

    def set_epoch(self, epoch: int) -> None:
        """Recompute which source rows this epoch uses and pass ``set_epoch`` on to every source that has it."""
        if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 0:
            raise ValueError(f"MixtureDataset.set_epoch: epoch={epoch!r}; expected a non-negative integer")
        self.epoch = int(epoch)
        for ds in self.sources.values():
            if hasattr(ds, "set_epoch"):
                ds.set_epoch(self.epoch)
        rows = [self._rows(k, self.epoch) for k in range(len(self.names))]
        self._row = np.concatenate(rows).astype(_index_dtype(max(self.sizes.values())))[self._order]

    # ---- Dataset ---------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self.length

    def locate(self, index: int) -> tuple[str, int]:
        """``(source name, row within that source)`` of mixture item ``index`` in the current epoch."""
        i = operator.index(index)
        if not 0 <= i < self.length:
            raise IndexError(f"MixtureDataset: index {index} out of range for {self.length} items")
        return self.names[int(self._source[i])], int(self._row[i])

    def __getitem__(self, index: int) -> dict[str, Any]:
        name, row = self.locate(index)
        item = self.sources[name][row]
        if not isinstance(item, dict):
            raise TypeError(
                f"MixtureDataset: source {name!r} returned {type(item).__name__} for row {row}; expected a dict"
            )
        if "source" in item:
            raise ValueError(
                f"MixtureDataset: source {name!r} item {row} already has a 'source' field; expected the "
                f"mixture to add it"
            )
        item["source"] = name
        return item

    @property
    def task(self) -> str:
        """The sources' shared ``task`` (e.g. ``"pairs"``), or ``"mixture"`` when they differ or lack one."""
        tasks = {getattr(ds, "task", None) for ds in self.sources.values()}
        return tasks.pop() if len(tasks) == 1 and None not in tasks else "mixture"

    @property
    def table(self) -> Any:
        """Not available: a mixture has no single annotation table (use ``mixture.sources[name].table``)."""
        raise AttributeError(
            "MixtureDataset has no single annotation table; use mixture.sources[name].table with the row "
            "from mixture.locate(index)"
        )

    def video_path(self, index: int) -> Path:
        """The media file of mixture item ``index`` in the current epoch (asked of its source)."""
        name, row = self.locate(index)
        ds = self.sources[name]
        if not hasattr(ds, "video_path"):
            raise AttributeError(f"MixtureDataset: source {name!r} ({type(ds).__name__}) has no video_path")
        return ds.video_path(row)

    # ---- run notes ---------------------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Items taken from every source per epoch (every key of ``sources``; they sum to ``len(self)``)."""
        return dict(self._counts)

    def describe(self) -> str:
        """One line for run notes, e.g. ``webvid 50.0% (12,800 of 2,500,000 per epoch), howto100m 50.0% ...``."""
        return ", ".join(
            f"{n} {100 * self.weights[n]:.1f}% ({self._counts[n]:,} of {self.sizes[n]:,} per epoch)"
            for n in self.names
        )

    # ---- skipped-file bookkeeping, the shape of VideoDataset's, each entry naming its source ---------------

    def skipped_files(self) -> list[dict[str, Any]]:
        """Every skip so far in every source: ``[{"path", "reason", "item", "row", "source"}, ...]``, source by
        source in the order of ``sources`` (``item``/``row`` are rows of that source). Sources without skip
        bookkeeping contribute nothing."""
        out: list[dict[str, Any]] = []
        for name, ds in self.sources.items():
            if hasattr(ds, "skipped_files"):
                out.extend({**entry, "source": name} for entry in ds.skipped_files())
        return out

    def skip_summary(self, log_it: bool = True) -> dict[str, Any]:
        """``{"count": skips, "files": {path: reason}, "by_source": {name: {"count", "files"}}}`` over all
        sources; logged as one warning when anything was skipped."""
        entries = self.skipped_files()
        by_source: dict[str, dict[str, Any]] = {}
        for name in self.names:
            mine = [e for e in entries if e["source"] == name]
            by_source[name] = {"count": len(mine), "files": {e["path"]: e["reason"] for e in mine}}
        summary = {"count": len(entries), "files": {e["path"]: e["reason"] for e in entries},
                   "by_source": by_source}  # fmt: skip
        if log_it and entries:
            log.warning("MixtureDataset: %d skipped item(s), %d file(s): %s", len(entries), len(summary["files"]),
                        "; ".join(f"{n}: {s['count']} item(s) {sorted(s['files'])}"
                                  for n, s in by_source.items() if s["count"]))  # fmt: skip
        return summary

    def reset_skips(self) -> None:
        """Forget the skips of every source (``reset_skips`` of each source that has it)."""
        for ds in self.sources.values():
            if hasattr(ds, "reset_skips"):
                ds.reset_skips()
