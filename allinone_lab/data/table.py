"""Compact annotation storage: columns of numpy arrays, cached on disk and memory-mapped.

Millions of captions as Python objects would be copied (page by page, through reference counting) into every
DataLoader worker. Here a text column is one ``uint8`` buffer plus ``int64`` offsets, numbers are numpy arrays,
and anything else (lists, dicts) is stored as its JSON text. The arrays are saved next to the annotation file
(``<file>.table/``) and opened with ``mmap_mode="r"``: workers share the page cache instead of copying.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

TABLE_VERSION = 1


def iter_records(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Rows of a ``.jsonl``, ``.json`` (a list), ``.csv`` or ``.tsv`` annotation file, as dicts."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise ValueError(f"{path}:{lineno}: invalid JSON ({exc})") from exc
    elif suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a JSON list of records")
        yield from data
    elif suffix in (".csv", ".tsv"):
        with open(path, encoding="utf-8", newline="") as f:
            yield from csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ",")
    else:
        raise ValueError(f"{path}: unsupported annotation format {suffix!r} (jsonl, json, csv, tsv)")


def _ends_digest(path: Path, size: int, chunk: int = 1 << 16) -> str:
    """sha256 of the first and last 64 KiB: with size and mtime, a cheap test that the file is unchanged."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(chunk))
        if size > chunk:
            f.seek(max(chunk, size - chunk))
            h.update(f.read(chunk))
    return h.hexdigest()


def _kind(v: Any) -> str:
    if isinstance(v, (bool, int)):
        return "int"
    if isinstance(v, float):
        return "float"
    return "text"


def _encode(v: Any) -> bytes:
    if isinstance(v, str):
        return v.encode("utf-8")
    return ("\x00json:" + json.dumps(v, separators=(",", ":"))).encode("utf-8")


def _decode(b: bytes) -> Any:
    s = b.decode("utf-8")
    return json.loads(s[6:]) if s.startswith("\x00json:") else s


class AnnotationTable:
    """Read-only columnar table. ``table[i]`` is row ``i`` as a dict; ``table.column(name)`` a whole column.

    Text columns are ``(bytes uint8 (N_bytes,), offsets int64 (N+1,))``; numeric ones ``(N,)`` arrays; a
    missing value is ``None`` (text) or NaN (float); int columns with missing values become float.
    """

    def __init__(self, columns: dict[str, dict[str, np.ndarray]], length: int, source: str = "") -> None:
        self._cols = columns
        self._len = length
        self.source = source
        self._dir: str | None = None  # set when memory-mapped from a cache directory

    def __getstate__(self) -> dict[str, Any]:
        # Pickling (spawned DataLoader workers) sends the cache path, not the arrays: workers re-map the files.
        if self._dir is not None:
            return {"dir": self._dir, "source": self.source}
        return {"cols": self._cols, "len": self._len, "source": self.source}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "dir" in state:
            d = Path(state["dir"])
            other = AnnotationTable._load(d, json.loads((d / "meta.json").read_text()), state["source"])
            self.__dict__.update(other.__dict__)
        else:
            self._cols, self._len, self.source, self._dir = state["cols"], state["len"], state["source"], None

    # Construction ------------------------------------------------------------------------------------
    @classmethod
    def from_records(cls, records, source: str = "") -> AnnotationTable:
        raw: dict[str, list] = {}
        keys: tuple = ()
        lists: list[list] = []
        n = 0
        for rec in records:
            if tuple(rec) != keys:  # slow path: a new key order or missing/extra keys
                for k in rec:
                    if k not in raw:
                        raw[k] = [None] * n
                keys = tuple(rec)
                lists = [raw[k] for k in keys]
            for col, v in zip(lists, rec.values(), strict=True):
                col.append(v)
            n += 1
            if len(keys) != len(raw):  # pad the columns this record lacks
                for col in raw.values():
                    if len(col) < n:
                        col.append(None)
        cols = {k: _pack(values) for k, values in raw.items()}
        return cls(cols, n, source)

    @classmethod
    def from_file(cls, path: str | os.PathLike, cache: bool = True) -> AnnotationTable:
        """Load an annotation file; with ``cache``, build ``<file>.table/`` once and memory-map it after."""
        path = Path(path)
        if not cache:
            return cls.from_records(iter_records(path), str(path))
        cache_dir = path.with_name(path.name + ".table")
        stat = path.stat()
        stamp = {"version": TABLE_VERSION, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                 "ends": _ends_digest(path, stat.st_size)}  # fmt: skip
        meta_path = cache_dir / "meta.json"
        try:
            meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
            if meta.get("stamp") == stamp:
                return cls._load(cache_dir, meta, str(path))
        except (OSError, ValueError):  # damaged, or replaced by another process meanwhile: build it again
            shutil.rmtree(cache_dir, ignore_errors=True)
        table = cls.from_records(iter_records(path), str(path))
        try:
            table.save(cache_dir, stamp)
            meta = json.loads(meta_path.read_text())
            if meta.get("stamp") == stamp:
                return cls._load(cache_dir, meta, str(path))
        except (OSError, ValueError):  # read-only dataset directory, or a concurrent writer: keep the arrays
            pass
        return table

    def save(self, directory: str | os.PathLike, stamp: dict | None = None) -> None:
        directory = Path(directory)
        tmp = directory.with_name(directory.name + f".tmp{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        meta = {"length": self._len, "stamp": stamp, "columns": {}}
        for name, col in self._cols.items():
            safe = f"c{len(meta['columns'])}"
            meta["columns"][name] = {"kind": col["kind"], "file": safe}
            for part, arr in col.items():
                if part != "kind":
                    np.save(tmp / f"{safe}.{part}.npy", arr)
        (tmp / "meta.json").write_text(json.dumps(meta))
        try:
            os.replace(tmp, directory)  # atomic; fails where a non-empty directory is already there
        except OSError:
            current = directory / "meta.json"
            if current.exists() and json.loads(current.read_text()).get("stamp") == stamp:
                return  # another process wrote the same table: keep its copy
            stale = directory.with_name(directory.name + f".old{os.getpid()}")
            os.replace(directory, stale)
            try:
                os.replace(tmp, directory)
            finally:
                shutil.rmtree(stale, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # nothing left after a successful replace

    @classmethod
    def _load(cls, directory: Path, meta: dict, source: str) -> AnnotationTable:
        cols = {}
        for name, info in meta["columns"].items():
            col: dict[str, Any] = {"kind": info["kind"]}
            for part in ("bytes", "offsets", "present") if info["kind"] == "text" else ("values",):
                col[part] = np.load(directory / f"{info['file']}.{part}.npy", mmap_mode="r")
            cols[name] = col
        table = cls(cols, meta["length"], source)
        table._dir = str(directory)
        return table

    # Access ------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._len

    @property
    def columns(self) -> list[str]:
        return list(self._cols)

    def __contains__(self, name: str) -> bool:
        return name in self._cols

    def get(self, i: int, name: str, default: Any = None) -> Any:
        col = self._cols.get(name)
        if col is None:
            return default
        if col["kind"] == "text":
            if not col["present"][i]:
                return default
            a, b = int(col["offsets"][i]), int(col["offsets"][i + 1])
            return _decode(bytes(col["bytes"][a:b]))
        v = col["values"][i]
        if col["kind"] == "float":
            return default if np.isnan(v) else float(v)
        return int(v)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -self._len <= i < self._len:
            raise IndexError(f"row {i} out of range for a table of {self._len} rows")
        i = i % self._len
        return {k: self.get(i, k) for k in self._cols}

    def column(self, name: str) -> list[Any] | np.ndarray:
        col = self._cols[name]
        if col["kind"] == "text":
            return [self.get(i, name) for i in range(self._len)]
        return np.asarray(col["values"])

    def nbytes(self) -> int:
        return sum(int(a.nbytes) for c in self._cols.values() for k, a in c.items() if k != "kind")


def _pack(values: list) -> dict[str, Any]:
    kinds = {_kind(v) for v in values if v is not None}
    if kinds and kinds <= {"int"} and all(v is not None for v in values):
        return {"kind": "int", "values": np.asarray(values, dtype=np.int64)}
    if kinds and kinds <= {"int", "float"}:
        return {
            "kind": "float",
            "values": np.asarray([np.nan if v is None else v for v in values], np.float64),
        }
    buf = bytearray()
    offsets = array("q", [0])
    present = np.zeros(len(values), dtype=bool)
    for i, v in enumerate(values):
        if v is not None:
            buf += _encode(v)
            present[i] = True
        offsets.append(len(buf))
    return {
        "kind": "text",
        "bytes": np.frombuffer(bytes(buf), dtype=np.uint8).copy(),
        "offsets": np.frombuffer(offsets, dtype=np.int64).copy(),
        "present": present,
    }
