"""A retrieval index: encode a corpus once, save the embeddings, answer queries by exact top-k.

The torch backend is an exact inner-product search in chunks (unit vectors: cosine similarity); faiss,
where installed, is offered as ``backend="faiss"`` (``IndexFlatIP``, also exact).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save
from torch import Tensor

from ..io import atomic_write_bytes


class EmbeddingIndex:
    """Stored unit embeddings ``(N, E)`` and their item ids ``(N,)``."""

    def __init__(self, embeddings: Tensor, ids: Tensor | None = None, backend: str = "torch") -> None:
        if embeddings.ndim != 2:
            raise ValueError(f"embeddings must be (N, E); got {tuple(embeddings.shape)}")
        self.embeddings = embeddings.float().contiguous()
        self.ids = torch.arange(len(embeddings)) if ids is None else ids.long()
        if len(self.ids) != len(self.embeddings):
            raise ValueError(f"{len(self.ids)} ids for {len(self.embeddings)} embeddings")
        if backend not in ("torch", "faiss"):
            raise ValueError(f"backend={backend!r}: expected 'torch' or 'faiss'")
        self.backend = backend
        self._faiss = None
        if backend == "faiss":
            try:
                import faiss
            except ImportError as error:
                raise ImportError("backend='faiss' needs the faiss package (pip install faiss-cpu)") from error
            self._faiss = faiss.IndexFlatIP(self.embeddings.shape[1])
            self._faiss.add(self.embeddings.cpu().numpy())

    def __len__(self) -> int:
        return len(self.embeddings)

    @torch.no_grad()
    def search(self, queries: Tensor, k: int = 10, chunk: int = 262_144) -> tuple[Tensor, Tensor]:
        """Top-``k`` ``(scores (Q, k), ids (Q, k))`` for ``queries (Q, E)``, best first."""
        k = min(k, len(self))
        if self._faiss is not None:
            scores, rows = self._faiss.search(queries.float().cpu().numpy(), k)
            return torch.from_numpy(scores), self.ids[torch.from_numpy(rows)]
        queries = queries.float().to(self.embeddings.device)
        best_scores = torch.full((len(queries), 0), float("-inf"), device=queries.device)
        best_rows = torch.zeros((len(queries), 0), dtype=torch.long, device=queries.device)
        for start in range(0, len(self), chunk):
            scores = queries @ self.embeddings[start : start + chunk].t()
            top = scores.topk(min(k, scores.shape[1]), dim=1)
            best_scores = torch.cat((best_scores, top.values), dim=1)
            best_rows = torch.cat((best_rows, top.indices + start), dim=1)
            if best_scores.shape[1] > k:
                keep = best_scores.topk(k, dim=1)
                best_scores, best_rows = keep.values, best_rows.gather(1, keep.indices)
        return best_scores, self.ids[best_rows.cpu()]

    def save(self, path: str | os.PathLike) -> None:
        """Write ``embeddings`` and ``ids`` as safetensors, atomically."""
        data = {"embeddings": self.embeddings.cpu(), "ids": self.ids.cpu()}
        atomic_write_bytes(path, lambda handle: handle.write(save(data)))

    @classmethod
    def load(cls, path: str | os.PathLike, backend: str = "torch") -> EmbeddingIndex:
        if not Path(path).is_file():
            raise FileNotFoundError(f"index file {str(path)!r} does not exist")
        data = load_file(str(path))
        return cls(data["embeddings"], data["ids"], backend)
