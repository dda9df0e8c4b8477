"""A retrieval index: encode a corpus once, save the embeddings, answer queries by top-k inner product.

Backends of :class:`EmbeddingIndex` (unit vectors: inner product is cosine similarity):

- ``torch``: exact search in chunks, on the embeddings' device;
- ``faiss`` or ``faiss-flat``: faiss ``IndexFlatIP``, also exact;
- ``faiss-ivfpq``: an inverted file of ``nlist`` cells with product-quantised codes (``m`` sub-quantisers of
  ``nbits`` bits; 4 bits use faiss's SIMD fast-scan kernel), ``nprobe`` cells searched per query, and the
  ``k * refine`` best candidates re-scored exactly against the stored vectors;
- ``faiss-hnsw``: a hierarchical navigable small-world graph (``hnsw_m`` links per node, ``ef_construction``,
  ``ef_search``) over the full vectors.

:class:`FaissIndex` is the faiss part on its own, for corpora too large to hold as one tensor: train it on a
sample, add embeddings chunk by chunk, re-score from a memory-mapped file of the stored vectors, save it
atomically beside them (:func:`faiss_index_path`). :func:`recall_at_k` compares any search with exact search
(:func:`exact_search`, which also scans memory-mapped arrays in chunks). :func:`clustered_embeddings` makes
reproducible synthetic embeddings with cluster structure for measurements and tests.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save
from torch import Tensor

from ..io import atomic_write_bytes

BACKENDS = ("torch", "faiss", "faiss-flat", "faiss-ivfpq", "faiss-hnsw")
FAISS_KINDS = ("flat", "ivfpq", "hnsw")
# The compressed kind chosen by measurement (benchmarks/retrieval_index.py): at 1M clustered 512-d
# embeddings on two CPU cores it builds in minutes and answers a query within 5 ms at recall@10 >= 0.95,
# where the graph index needs a far longer build and keeps every full vector in memory.
DEFAULT_COMPRESSED_KIND = "ivfpq"
# Which fields shape the built index (the rest are search-time settings that can change after loading).
BUILD_FIELDS = {"flat": (), "ivfpq": ("nlist", "m", "nbits", "quantizer"), "hnsw": ("hnsw_m", "ef_construction")}
SEARCH_FIELDS = {"flat": (), "ivfpq": ("nprobe", "refine"), "hnsw": ("ef_search",)}
_MAGIC = b"ALLINONE-FAISS-INDEX 1\n"


def _faiss():
    try:
        import faiss
    except ImportError as error:
        raise ImportError("faiss indexes need the faiss package (pip install faiss-cpu, or faiss-gpu on GPUs)") \
            from error
    return faiss


def faiss_available() -> bool:
    try:
        _faiss()
    except ImportError:
        return False
    return True


def faiss_gpus() -> int:
    """Number of GPUs faiss can use (0 with faiss-cpu or without faiss)."""
    if not faiss_available():
        return 0
    faiss = _faiss()
    return faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0


@dataclass(frozen=True)
class FaissParams:
    """The parameters of a faiss index; only those of ``kind`` are used (``BUILD_FIELDS``, ``SEARCH_FIELDS``).

    ``m`` must divide the embedding size; bytes per stored vector are ``m * nbits / 8`` for ``ivfpq``.
    ``quantizer`` assigns vectors to the ``nlist`` cells: ``flat`` (exact) or ``hnsw`` (a graph over the
    cell centroids: faster to add to when ``nlist`` is in the tens of thousands).
    """

    kind: str = DEFAULT_COMPRESSED_KIND
    nlist: int = 1024
    m: int = 128
    nbits: int = 4
    nprobe: int = 64
    refine: int = 20
    quantizer: str = "flat"
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 64

    def validate(self, dim: int | None = None, count: int | None = None) -> FaissParams:
        """Check every field (and, given them, against the embedding size and the number of training
        vectors); the error names the field and what was expected. Returns ``self``."""
        if self.kind not in FAISS_KINDS:
            raise ValueError(f"FaissParams.kind={self.kind!r}: expected one of {list(FAISS_KINDS)}")
        for name, low in (("nlist", 1), ("m", 1), ("nprobe", 1), ("refine", 0), ("hnsw_m", 2),
                          ("ef_construction", 1), ("ef_search", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
                raise ValueError(f"FaissParams.{name}={value!r}: expected an integer >= {low}")
        if self.quantizer not in ("flat", "hnsw"):
            raise ValueError(f"FaissParams.quantizer={self.quantizer!r}: expected 'flat' or 'hnsw'")
        if self.nbits not in (4, 8) or isinstance(self.nbits, bool):
            raise ValueError(f"FaissParams.nbits={self.nbits!r}: expected 4 (fast-scan codes) or 8")
        if self.kind != "ivfpq":
            return self
        if self.nprobe > self.nlist:
            raise ValueError(f"FaissParams.nprobe={self.nprobe}: expected at most nlist={self.nlist}")
        if self.nbits == 4 and self.m % 2:
            raise ValueError(f"FaissParams.m={self.m}: expected an even number with nbits=4 (fast-scan)")
        if dim is not None and dim % self.m:
            raise ValueError(f"FaissParams.m={self.m}: expected a divisor of the embedding size {dim}")
        if count is not None and count < self.nlist:
            raise ValueError(f"FaissParams.nlist={self.nlist}: expected at most the {count} training vectors")
        if count is not None and count < 2**self.nbits:
            raise ValueError(f"FaissParams.nbits={self.nbits}: expected at least 2**nbits={2**self.nbits} "
                             f"training vectors, got {count}")
        return self

    def replace(self, **changes: Any) -> FaissParams:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"FaissParams has no field {sorted(unknown)[0]!r}; expected some of "
                             f"{[f.name for f in dataclasses.fields(self)]}")
        return dataclasses.replace(self, **changes)

    def build_key(self) -> dict[str, Any]:
        return {"kind": self.kind, **{name: getattr(self, name) for name in BUILD_FIELDS[self.kind]}}

    @classmethod
    def default(cls, kind: str = DEFAULT_COMPRESSED_KIND, count: int | None = None,
                dim: int | None = None) -> FaissParams:
        """Defaults for ``count`` stored vectors of size ``dim``, as measured at 1M and 10M 512-d
        (benchmarks/RESULTS.md, retrieval): ``nlist`` near ``sqrt(count)`` (and no more than ``count / 39``,
        faiss's training minimum per cell); ``nprobe`` a sixteenth of it up to 1,024 cells and a 32nd beyond;
        the best ``20 * k`` candidates re-scored exactly up to 2M stored and ``50 * k`` beyond (at 10M, 20
        holds recall@10 at 0.92 whatever ``nprobe``); exact (flat) assignment to the cells up to 8,192 and a
        graph quantizer beyond (at 4,096 cells flat assignment adds 2.5x faster on two cores); and ``m`` a
        quarter of ``dim`` (64 bytes per 512-d vector with 4-bit codes)."""
        params = cls(kind=kind)
        if count is not None:
            nlist = int(2 ** round(np.log2(max(1.0, np.sqrt(count)))))
            nlist = max(1, min(nlist, count // 39 or 1))
            share = 16 if nlist <= 1024 else 32
            params = params.replace(nlist=nlist, nprobe=max(1, min(nlist, -(-nlist // share))),
                                    refine=20 if count <= 2_000_000 else 50,
                                    quantizer="hnsw" if nlist > 8192 else "flat")
        if dim is not None:
            m = max(2, dim // 4)
            while dim % m or m % 2:
                m -= 1
                if m < 2:
                    m = 1
                    break
            params = params.replace(m=m, nbits=4 if m % 2 == 0 else 8)
        return params.validate()


def _as_numpy(x) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().float().cpu().numpy()
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32))


class FaissIndex:
    """A faiss index over stored vectors, with ids and (for ``ivfpq`` with ``refine``) the stored vectors
    it re-scores from: any row-indexable array (a tensor, a numpy array, a memory-mapped file)."""

    def __init__(self, index, params: FaissParams, dim: int, ids: Tensor | None = None, vectors=None) -> None:
        self.index, self.params, self.dim = index, params, dim
        self._ids = ids
        self.vectors = vectors
        self.on_gpu = False
        self._apply_search_params()

    # construction -----------------------------------------------------------------------------------
    @classmethod
    def trained(cls, train_vectors, params: FaissParams, seed: int = 0) -> FaissIndex:
        """An empty index of ``params.kind`` trained on ``train_vectors (T, E)`` (``ivfpq``; the others need
        no training and only take the size ``E`` from it)."""
        faiss = _faiss()
        sample = _as_numpy(train_vectors)
        if sample.ndim != 2:
            raise ValueError(f"train_vectors must be (T, E); got {sample.shape}")
        dim = sample.shape[1]
        params.validate(dim, len(sample) if params.kind == "ivfpq" else None)
        metric = faiss.METRIC_INNER_PRODUCT
        if params.kind == "flat":
            index = faiss.IndexFlatIP(dim)
        elif params.kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, params.hnsw_m, metric)
            index.hnsw.efConstruction = params.ef_construction
        else:
            if params.quantizer == "hnsw":
                quantizer = faiss.IndexHNSWFlat(dim, 32, metric)
            else:
                quantizer = faiss.IndexFlatIP(dim)
            if params.nbits == 4:
                index = faiss.IndexIVFPQFastScan(quantizer, dim, params.nlist, params.m, 4, metric)
            else:
                index = faiss.IndexIVFPQ(quantizer, dim, params.nlist, params.m, 8, metric)
                index.do_polysemous_training = False  # orders of magnitude slower to train, unused here
            index.cp.seed = seed
            index.pq.cp.seed = seed
            if params.quantizer == "hnsw":
                clustering = faiss.IndexFlatIP(dim)  # exact assignment while training the centroids
                index.clustering_index = clustering
            index.train(sample)
            if params.quantizer == "hnsw":
                index.clustering_index = None
            quantizer.this.disown()  # the index frees its coarse quantizer
            index.own_fields = True
        return cls(index, params, dim)

    @classmethod
    def build(cls, embeddings, ids: Tensor | None = None, params: FaissParams | None = None,
              train_size: int | None = None, chunk: int = 262_144, seed: int = 0) -> FaissIndex:
        """Train (on ``train_size`` rows spread over ``embeddings``, default ``64 * nlist``) and add every row
        of ``embeddings`` (a tensor, array or memory-mapped array), ``chunk`` rows at a time; re-scoring reads
        ``embeddings``."""
        count = len(embeddings)
        params = params or FaissParams.default(count=count, dim=embeddings.shape[1])
        if params.kind == "ivfpq":
            take = min(count, train_size or 64 * params.nlist)
            rows = np.linspace(0, count - 1, take).astype(np.int64) if take < count else np.arange(count)
            sample = np.asarray(embeddings[torch.from_numpy(rows)] if isinstance(embeddings, Tensor)
                                else embeddings[rows], dtype=np.float32)
        else:
            sample = np.asarray(embeddings[:1], dtype=np.float32) if not isinstance(embeddings, Tensor) \
                else embeddings[:1]
        index = cls.trained(sample, params, seed)
        for start in range(0, count, chunk):
            index.add(embeddings[start : start + chunk])
        index.vectors = embeddings
        if ids is not None:
            index.ids = ids
        return index

    def add(self, vectors, ids: Tensor | None = None) -> None:
        """Append ``vectors (n, E)`` (ids: the next row numbers unless given)."""
        array = _as_numpy(vectors)
        if array.ndim != 2 or array.shape[1] != self.dim:
            raise ValueError(f"vectors must be (n, {self.dim}); got {array.shape}")
        start = self.index.ntotal
        self.index.add(array)
        if ids is not None or self._ids is not None:
            new = torch.arange(start, start + len(array)) if ids is None else torch.as_tensor(ids).long()
            if len(new) != len(array):
                raise ValueError(f"{len(new)} ids for {len(array)} vectors")
            self._ids = torch.cat((self.ids[:start], new))

    @property
    def ids(self) -> Tensor:
        return torch.arange(self.index.ntotal) if self._ids is None else self._ids

    @ids.setter
    def ids(self, value: Tensor) -> None:
        value = torch.as_tensor(value).long()
        if len(value) != len(self):
            raise ValueError(f"{len(value)} ids for {len(self)} stored vectors")
        self._ids = value

    def __len__(self) -> int:
        return int(self.index.ntotal)

    # search -----------------------------------------------------------------------------------------
    def set_search(self, **changes: Any) -> None:
        """Change search-time parameters (``nprobe``, ``refine``, ``ef_search``); they are validated."""
        for name in changes:
            if name not in ("nprobe", "refine", "ef_search"):
                raise ValueError(f"{name!r} is not a search-time parameter; expected nprobe, refine or ef_search")
        self.params = self.params.replace(**changes).validate()
        self._apply_search_params()

    def _apply_search_params(self) -> None:
        if self.params.kind == "ivfpq":
            ivf = _faiss().extract_index_ivf(self.index)
            ivf.nprobe = self.params.nprobe
            if self.params.quantizer == "hnsw":
                _faiss().downcast_index(ivf.quantizer).hnsw.efSearch = max(64, 2 * self.params.nprobe)
        elif self.params.kind == "hnsw":
            self.index.hnsw.efSearch = self.params.ef_search

    def search(self, queries, k: int = 10) -> tuple[Tensor, Tensor]:
        """Top-``k`` ``(scores (Q, k), ids (Q, k))``, best first; missing results (fewer than ``k`` found)
        have score ``-inf`` and id ``-1``."""
        if k < 1:
            raise ValueError(f"k={k}: expected an integer >= 1")
        q = _as_numpy(queries)
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(f"queries must be (Q, {self.dim}); got {q.shape}")
        k = min(k, len(self))
        refine = self.params.refine if self.params.kind == "ivfpq" else 0
        if refine and self.vectors is None:
            raise ValueError(f"refine={refine} re-scores from the stored vectors, and none are attached: "
                             f"pass vectors= (or use refine=0)")
        scores, rows = self.index.search(q, min(len(self), k * refine) if refine else k)
        if refine:
            scores, rows = self._rescore(q, rows, k)
        rows_t = torch.from_numpy(np.ascontiguousarray(rows, dtype=np.int64))
        found = rows_t >= 0
        ids = rows_t if self._ids is None else torch.where(found, self._ids[rows_t.clamp(min=0)], -1)
        scores_t = torch.from_numpy(np.ascontiguousarray(scores, dtype=np.float32))
        return scores_t.masked_fill(~found, float("-inf")), ids

    def _rescore(self, q: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        flat = rows.reshape(-1)
        valid = flat >= 0
        unique, inverse = np.unique(flat[valid], return_inverse=True)
        if isinstance(self.vectors, Tensor):
            stored = self.vectors[torch.from_numpy(unique)].float().cpu().numpy()
        else:
            stored = np.asarray(self.vectors[unique], dtype=np.float32)
        exact = np.full(flat.shape, -np.inf, dtype=np.float32)
        query_of = np.repeat(np.arange(len(q)), rows.shape[1])[valid]
        exact[valid] = np.einsum("ne,ne->n", q[query_of], stored[inverse])
        exact = exact.reshape(rows.shape)
        order = np.argsort(-exact, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(exact, order, 1), np.take_along_axis(rows, order, 1)

    # devices, size, files ---------------------------------------------------------------------------
    def to_gpu(self) -> FaissIndex:
        """Move the index onto every GPU faiss sees (faiss-gpu; ``flat`` and ``ivfpq`` with ``nbits=8``)."""
        if faiss_gpus() == 0:
            raise RuntimeError("no GPU for faiss: install faiss-gpu on a machine with CUDA devices")
        if self.params.kind == "hnsw" or (self.params.kind == "ivfpq" and self.params.nbits != 8):
            raise ValueError(f"kind={self.params.kind!r}, nbits={self.params.nbits}: faiss GPUs take 'flat' "
                             f"or 'ivfpq' with nbits=8")
        faiss = _faiss()
        options = faiss.GpuMultipleClonerOptions()
        options.useFloat16LookupTables = True  # needed for m > 48 sub-quantisers on GPU
        self.index = faiss.index_cpu_to_all_gpus(self.index, options)
        self.on_gpu = True
        self._apply_search_params()
        return self

    def _cpu_index(self):
        return _faiss().index_gpu_to_cpu(self.index) if self.on_gpu else self.index

    def nbytes(self) -> int:
        """Size of the index in bytes as faiss serialises it (about its size in memory); the re-scoring
        vectors, read from the stored embeddings, are not counted."""
        return int(_faiss().serialize_index(self._cpu_index()).nbytes)

    def save(self, path: str | os.PathLike) -> None:
        """Write parameters, ids and the faiss index to ``path`` atomically (a temporary file, renamed)."""
        header = {"params": dataclasses.asdict(self.params), "dim": self.dim, "count": len(self),
                  "ids": self._ids is not None}
        blob = _faiss().serialize_index(self._cpu_index())

        def write(handle) -> None:
            text = json.dumps(header, sort_keys=True).encode()
            handle.write(_MAGIC + len(text).to_bytes(8, "little") + text)
            if self._ids is not None:
                handle.write(self._ids.numpy().astype("<i8").tobytes())
            handle.write(memoryview(blob))

        atomic_write_bytes(path, write)

    @classmethod
    def load(cls, path: str | os.PathLike, vectors=None) -> FaissIndex:
        """Read an index written by :meth:`save`; ``vectors`` are the stored embeddings to re-score from."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"faiss index file {str(path)!r} does not exist")
        with open(path, "rb") as handle:
            if handle.read(len(_MAGIC)) != _MAGIC:
                raise ValueError(f"{str(path)!r} is not an index written by FaissIndex.save")
            header = json.loads(handle.read(int.from_bytes(handle.read(8), "little")))
            ids = None
            if header["ids"]:
                ids = torch.from_numpy(np.frombuffer(handle.read(8 * header["count"]), dtype="<i8").copy())
            blob = np.frombuffer(handle.read(), dtype=np.uint8)
        index = _faiss().deserialize_index(blob)
        params = FaissParams(**header["params"]).validate()
        return cls(index, params, header["dim"], ids, vectors)


def faiss_index_path(embeddings_path: str | os.PathLike, kind: str) -> Path:
    """Where the faiss index of ``kind`` built from the embeddings file ``embeddings_path`` is kept."""
    if kind not in FAISS_KINDS:
        raise ValueError(f"kind={kind!r}: expected one of {list(FAISS_KINDS)}")
    path = Path(embeddings_path)
    return path.with_name(f"{path.name}.{kind}.faiss")


@torch.no_grad()
def exact_search(stored, queries, k: int = 10, chunk: int = 262_144) -> tuple[Tensor, Tensor]:
    """Exact top-``k`` ``(scores, rows)`` of ``queries (Q, E)`` over ``stored (N, E)`` (a tensor, an array or a
    memory-mapped array of any float type), reading ``chunk`` rows at a time; on the device of a stored tensor,
    else on the CPU."""
    device = stored.device if isinstance(stored, Tensor) else torch.device("cpu")
    q = (queries.float() if isinstance(queries, Tensor) else torch.from_numpy(_as_numpy(queries))).to(device)
    best_scores = torch.full((len(q), 0), float("-inf"), device=device)
    best_rows = torch.zeros((len(q), 0), dtype=torch.long, device=device)
    for start in range(0, len(stored), chunk):
        block = stored[start : start + chunk]
        block = block.float() if isinstance(block, Tensor) else torch.from_numpy(np.asarray(block, dtype=np.float32))
        scores = q @ block.t()
        top = scores.topk(min(k, scores.shape[1]), dim=1)
        best_scores = torch.cat((best_scores, top.values), dim=1)
        best_rows = torch.cat((best_rows, top.indices + start), dim=1)
        if best_scores.shape[1] > k:
            keep = best_scores.topk(k, dim=1)
            best_scores, best_rows = keep.values, best_rows.gather(1, keep.indices)
    return best_scores, best_rows


def recall_at_k(found: Tensor, exact: Tensor, k: int = 10) -> float:
    """Mean over queries of the share of the exact top-``k`` ids ``exact (Q, >=k)`` that are among the first
    ``k`` of ``found (Q, >=k)`` (k-recall@k)."""
    found, exact = torch.as_tensor(found), torch.as_tensor(exact)
    if found.ndim != 2 or exact.ndim != 2 or len(found) != len(exact):
        raise ValueError(f"found and exact must be (Q, k) with the same Q; got {tuple(found.shape)} and "
                         f"{tuple(exact.shape)}")
    if exact.shape[1] < k or found.shape[1] < k:
        raise ValueError(f"k={k}: expected at most the number of columns ({found.shape[1]}, {exact.shape[1]})")
    hits = (found[:, :k, None] == exact[:, None, :k]).any(dim=1).sum()
    return float(hits) / (len(exact) * k)


CLUSTER_BLOCK = 65_536


def clustered_embeddings(start: int, stop: int, dim: int = 512, seed: int = 0, clusters: int = 1024,
                         latent: int = 64, spread: float = 1.0, noise: float = 0.3,
                         decay: float = 0.5) -> Tensor:
    """Rows ``start:stop`` of a fixed, endless sequence of synthetic unit embeddings with cluster structure.

    Each row: a cluster ``c`` drawn uniformly from ``clusters`` centres ``mu_c ~ N(0, I)`` in a ``latent``-d
    space, ``z = (mu_c + spread * N(0, I)) * s`` with the power-law spectrum ``s_i = (i + 1) ** -decay``,
    mapped to ``dim`` by a fixed Gaussian matrix, plus isotropic Gaussian noise of ``noise`` times the row's
    norm in total, and normalised. Rows are made in blocks of 65,536 keyed on ``(seed, block)``, so any range
    comes out the same however the sequence is cut into chunks.
    """
    if not 0 <= start <= stop:
        raise ValueError(f"start={start}, stop={stop}: expected 0 <= start <= stop")
    setup = torch.Generator().manual_seed(seed)
    centres = torch.randn(clusters, latent, generator=setup)
    scale = (1.0 + torch.arange(latent, dtype=torch.float32)) ** -decay
    projection = torch.randn(latent, dim, generator=setup) / latent**0.5
    parts = []
    for block in range(start // CLUSTER_BLOCK, -(-stop // CLUSTER_BLOCK)):
        gen = torch.Generator().manual_seed(seed * 1_000_003 + 1 + block)
        which = torch.randint(clusters, (CLUSTER_BLOCK,), generator=gen)
        z = (centres[which] + spread * torch.randn(CLUSTER_BLOCK, latent, generator=gen)) * scale
        x = z @ projection
        x = x + noise * x.norm(dim=1, keepdim=True) / dim**0.5 * torch.randn(CLUSTER_BLOCK, dim, generator=gen)
        first = block * CLUSTER_BLOCK
        parts.append(x[max(start, first) - first : min(stop, first + CLUSTER_BLOCK) - first])
    if not parts:
        return torch.zeros(0, dim)
    return torch.nn.functional.normalize(torch.cat(parts), dim=1)


class EmbeddingIndex:
    """Stored unit embeddings ``(N, E)`` and their item ids ``(N,)``, searched with ``backend``
    (``BACKENDS``); ``faiss_params`` set a faiss index's parameters (default ``FaissParams.default`` for
    the size)."""

    def __init__(self, embeddings: Tensor, ids: Tensor | None = None, backend: str = "torch",
                 faiss_params: FaissParams | None = None, _built: FaissIndex | None = None) -> None:
        if embeddings.ndim != 2:
            raise ValueError(f"embeddings must be (N, E); got {tuple(embeddings.shape)}")
        self.embeddings = embeddings.float().contiguous()
        self.ids = torch.arange(len(embeddings)) if ids is None else ids.long()
        if len(self.ids) != len(self.embeddings):
            raise ValueError(f"{len(self.ids)} ids for {len(self.embeddings)} embeddings")
        if backend not in BACKENDS:
            raise ValueError(f"backend={backend!r}: expected one of {list(BACKENDS)}")
        self.backend = backend
        self._faiss: FaissIndex | None = None
        if backend == "torch":
            if faiss_params is not None:
                raise ValueError("faiss_params: expected None with backend='torch'")
            return
        kind = "flat" if backend == "faiss" else backend.removeprefix("faiss-")
        if faiss_params is None:
            faiss_params = FaissParams.default(kind, len(self.embeddings), self.embeddings.shape[1])
        elif faiss_params.kind != kind:
            raise ValueError(f"faiss_params.kind={faiss_params.kind!r}: expected {kind!r} for backend={backend!r}")
        faiss_params.validate(self.embeddings.shape[1], len(self.embeddings) if kind == "ivfpq" else None)
        if _built is not None:
            _built.vectors = self.embeddings.cpu()
            self._faiss = _built
            self._faiss.set_search(**{f: getattr(faiss_params, f) for f in SEARCH_FIELDS[kind]})
        else:
            self._faiss = FaissIndex.build(self.embeddings.cpu(), params=faiss_params)
        if self.embeddings.device.type == "cuda" and faiss_gpus() > 0 and kind != "hnsw" and \
                (kind == "flat" or faiss_params.nbits == 8):
            self._faiss.to_gpu()

    @property
    def faiss_index(self) -> FaissIndex | None:
        return self._faiss

    def __len__(self) -> int:
        return len(self.embeddings)

    @torch.no_grad()
    def search(self, queries: Tensor, k: int = 10, chunk: int = 262_144) -> tuple[Tensor, Tensor]:
        """Top-``k`` ``(scores (Q, k), ids (Q, k))`` for ``queries (Q, E)``, best first."""
        k = min(k, len(self))
        if self._faiss is not None:
            scores, rows = self._faiss.search(queries, k)
            ids = torch.where(rows >= 0, self.ids[rows.clamp(min=0)], rows)
            return scores, ids
        best_scores, best_rows = exact_search(self.embeddings, queries, k, chunk)
        return best_scores, self.ids[best_rows.cpu()]

    def save(self, path: str | os.PathLike) -> None:
        """Write ``embeddings`` and ``ids`` as safetensors, atomically; a faiss index built from them goes
        beside, at ``faiss_index_path(path, kind)`` (also atomically)."""
        data = {"embeddings": self.embeddings.cpu(), "ids": self.ids.cpu()}
        atomic_write_bytes(path, lambda handle: handle.write(save(data)))
        if self._faiss is not None:
            self._faiss.save(faiss_index_path(path, self._faiss.params.kind))

    @classmethod
    def load(cls, path: str | os.PathLike, backend: str = "torch",
             faiss_params: FaissParams | None = None) -> EmbeddingIndex:
        """Read embeddings and ids; with a faiss backend, reuse the index saved beside them when it was built
        with the same build parameters (``BUILD_FIELDS``) from as many vectors, else build it."""
        if not Path(path).is_file():
            raise FileNotFoundError(f"index file {str(path)!r} does not exist")
        data = load_file(str(path))
        if backend not in BACKENDS:
            raise ValueError(f"backend={backend!r}: expected one of {list(BACKENDS)}")
        built = None
        if backend != "torch":
            kind = "flat" if backend == "faiss" else backend.removeprefix("faiss-")
            beside = faiss_index_path(path, kind)
            if beside.is_file():
                candidate = FaissIndex.load(beside)
                wanted = faiss_params or FaissParams.default(kind, *data["embeddings"].shape)
                if candidate.params.build_key() == wanted.build_key() and len(candidate) == len(data["ids"]):
                    built = candidate
                    faiss_params = wanted
        return cls(data["embeddings"], data["ids"], backend, faiss_params, _built=built)

