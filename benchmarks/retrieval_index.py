"""Retrieval index at scale: exact search against faiss IVF-PQ and HNSW, beside the paper's Table 14.

Stored embeddings are 512-d synthetic unit vectors with cluster structure (``clustered_embeddings`` of
allinone_lab.eval.index: 1,024 Gaussian clusters in a 64-d latent space with a power-law spectrum, mapped to
512-d, plus isotropic noise, normalised); queries are further rows of the same sequence, never stored. They
are generated in chunks and written once as float16 to a memory-mapped file per size under ``--store``
(10M x 512 is 10 GB on disk instead of 20 GB of float32 in memory), and every index reads that file:

- exact ground truth: a chunked scan of the file for all queries at once (the batched exact cost);
- ``torch`` / ``flat`` (sizes up to ``--in-memory-max``): the file loaded as float32, exact search per query;
- ``ivfpq``: trained on rows spread over the file, filled chunk by chunk, saved beside the file, searched
  over a sweep of ``nprobe``; re-scoring reads the candidates' float16 rows: from memory for sizes up to
  ``--refine-in-memory-max`` (the file read into RAM, 1 GB at 1M; counted in ``refine_bytes``), else from
  the memory-mapped file (page cache or disk);
- ``hnsw``: built on the first ``--hnsw-size`` rows (its build time grows too fast for this CPU at 1M).

Reported per index: build seconds, index bytes (its file as faiss serialises it, about its memory),
milliseconds per query one at a time (``--threads`` threads, median) and in one batch of all queries
(``--batch-threads``), and recall@10 against the exact top 10. Paper (Table 14, FAISS-GPU on eight A100s):
1.51 ms for 1K stored videos, 143.25 ms for 128.9M.

    python benchmarks/retrieval_index.py --sizes 1000000 10000000
    python benchmarks/retrieval_index.py --sizes 1000 1000000 --kinds torch --data uniform   # exact only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from allinone_lab.eval.index import (
    EmbeddingIndex,
    FaissIndex,
    FaissParams,
    clustered_embeddings,
    exact_search,
    faiss_index_path,
    recall_at_k,
)

QUERY_START = 1 << 40  # query rows: far beyond any stored row of the sequence
PAPER_128M_MS = 143.25


def threads(n: int) -> None:
    torch.set_num_threads(n)
    try:
        import faiss

        faiss.omp_set_num_threads(n)
    except ImportError:
        pass


def rows(data: str, start: int, stop: int, dim: int, seed: int) -> torch.Tensor:
    if data == "clustered":
        return clustered_embeddings(start, stop, dim=dim, seed=seed)
    gen = torch.Generator().manual_seed(seed * 7919 + start)
    return torch.nn.functional.normalize(torch.randn(stop - start, dim, generator=gen), dim=1)


def stored_file(store: Path, data: str, size: int, dim: int, seed: int, chunk: int) -> tuple[np.memmap, float]:
    """The float16 file of ``size`` stored rows (made once, chunk by chunk); seconds spent making it."""
    path = store / f"{data}_{size}x{dim}_seed{seed}.f16"
    spec = store / f"{path.name}.json"
    wanted = {"data": data, "size": size, "dim": dim, "seed": seed}
    seconds = 0.0
    if not (path.is_file() and spec.is_file() and json.loads(spec.read_text()) == wanted):
        store.mkdir(parents=True, exist_ok=True)
        start_time = time.perf_counter()
        out = np.lib.format.open_memmap(path.with_suffix(".tmp"), mode="w+", dtype=np.float16, shape=(size, dim))
        for start in range(0, size, chunk):
            out[start : start + chunk] = rows(data, start, min(size, start + chunk), dim, seed).half().numpy()
        out.flush()
        del out
        os.replace(path.with_suffix(".tmp"), path)
        spec.write_text(json.dumps(wanted))
        seconds = time.perf_counter() - start_time
    return np.load(path, mmap_mode="r"), seconds


def time_single(search, queries: torch.Tensor, n_threads: int) -> float:
    threads(n_threads)
    search(queries[:1])
    times = []
    for q in queries:
        start = time.perf_counter()
        search(q[None])
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def time_batch(search, queries: torch.Tensor, n_threads: int, repeats: int = 3) -> float:
    threads(n_threads)
    search(queries)
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        search(queries)
        runs.append((time.perf_counter() - start) / len(queries))
    return 1e3 * statistics.median(runs)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[1_000_000, 10_000_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--kinds", nargs="+", default=["torch", "flat", "ivfpq", "hnsw"],
                        choices=["torch", "flat", "ivfpq", "hnsw"])
    parser.add_argument("--data", default="clustered", choices=["clustered", "uniform"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--store", type=Path, default=Path("/tmp/allinone_retrieval_bench"))
    parser.add_argument("--in-memory-max", type=int, default=1_000_000,
                        help="largest size loaded as float32 for the torch and flat indexes")
    parser.add_argument("--refine-in-memory-max", type=int, default=1_000_000,
                        help="largest size whose float16 rows are held in memory for IVF-PQ re-scoring")
    parser.add_argument("--reuse-index", action="store_true",
                        help="load an IVF-PQ index saved beside the file by an earlier run (same parameters) "
                             "instead of building it; build_s is then null")
    parser.add_argument("--hnsw-size", type=int, default=100_000)
    parser.add_argument("--nprobe", nargs="*", type=int, default=None,
                        help="nprobe values to sweep (default: nlist/32, nlist/16, nlist/8)")
    parser.add_argument("--refine", type=int, default=None, help="IVF-PQ re-scoring factor (default: FaissParams)")
    parser.add_argument("--ef-search", nargs="*", type=int, default=[32, 64, 128])
    parser.add_argument("--quantizer", choices=["flat", "hnsw"], default=None,
                        help="IVF-PQ cell assignment (default: FaissParams.default)")
    parser.add_argument("--train-per-cell", type=int, default=40, help="IVF-PQ training rows per cell")
    parser.add_argument("--threads", type=int, default=1, help="threads for single queries")
    parser.add_argument("--batch-threads", type=int, default=2, help="threads for batches, builds and the exact scan")
    parser.add_argument("--chunk", type=int, default=262_144)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    results: list[dict] = []

    def emit(**row) -> None:
        row = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}
        print(json.dumps(row), flush=True)
        results.append(row)

    emit(kind="machine", machine=platform.processor() or platform.machine(), cpus=os.cpu_count(),
         torch=torch.__version__, load_average=os.getloadavg(), threads=args.threads, batch_threads=args.batch_threads, data=args.data)
    queries = rows(args.data, QUERY_START, QUERY_START + args.queries, args.dim, args.seed)
    for size in args.sizes:
        threads(args.batch_threads)
        stored, made_s = stored_file(args.store, args.data, size, args.dim, args.seed, args.chunk)
        start = time.perf_counter()
        exact_scores, exact_rows = exact_search(stored, queries, args.k, args.chunk)
        scan_ms = 1e3 * (time.perf_counter() - start) / len(queries)
        emit(kind="exact-scan", stored=size, file_s=made_s, ms_per_query_batched=scan_ms,
             note="chunked scan of the float16 file for all queries at once (ground truth)")

        def recall(found, exact_rows=exact_rows) -> float:
            return recall_at_k(found, exact_rows, args.k)

        in_memory = [k for k in ("torch", "flat") if k in args.kinds] if size <= args.in_memory_max else []
        if in_memory:
            embeddings = torch.from_numpy(np.asarray(stored, dtype=np.float32))
            for kind in in_memory:
                start = time.perf_counter()
                index = EmbeddingIndex(embeddings, backend="torch" if kind == "torch" else "faiss-flat")
                build_s = time.perf_counter() - start

                def search(q, index=index):
                    return index.search(q, args.k)

                emit(kind=kind, stored=size, build_s=build_s, index_bytes=embeddings.numel() * 4,
                     recall_at_10=recall(search(queries)[1]),
                     ms_per_query=time_single(search, queries[:20], args.threads),
                     ms_per_query_batched=time_batch(search, queries, args.batch_threads))
                del index
            del embeddings

        if "ivfpq" in args.kinds:
            params = FaissParams.default(count=size, dim=args.dim)
            if args.refine is not None:
                params = params.replace(refine=args.refine)
            if args.quantizer is not None:
                params = params.replace(quantizer=args.quantizer)
            threads(args.batch_threads)
            path = faiss_index_path(args.store / f"{args.data}_{size}x{args.dim}_seed{args.seed}.f16", "ivfpq")
            build_s, reusable = None, False
            if args.reuse_index and path.is_file():
                saved = FaissIndex.load(path)
                reusable = len(saved) == size and saved.params.build_key() == params.build_key()
                del saved
            if not reusable:
                start = time.perf_counter()
                index = FaissIndex.build(stored, params=params, train_size=args.train_per_cell * params.nlist,
                                         chunk=args.chunk, seed=args.seed)
                build_s = time.perf_counter() - start
                index.save(path)
                del index
            in_memory_refine = size <= args.refine_in_memory_max
            start = time.perf_counter()
            index = FaissIndex.load(path)
            load_s = time.perf_counter() - start
            index.vectors = np.array(stored) if in_memory_refine else stored
            refine_bytes = stored.nbytes if in_memory_refine else 0
            sweep = args.nprobe or sorted({max(1, params.nlist // d) for d in (32, 16, 8)})
            settings = [(n, params.refine) for n in sweep] + [(params.nprobe, 0)]
            for nprobe, refine in settings:
                index.set_search(nprobe=min(nprobe, params.nlist), refine=refine)

                def search(q, index=index):
                    return index.search(q, args.k)

                emit(kind="ivfpq", stored=size, nlist=params.nlist, m=params.m, nbits=params.nbits,
                     quantizer=params.quantizer, nprobe=nprobe, refine=refine, build_s=build_s, load_s=load_s,
                     index_bytes=path.stat().st_size, refine_bytes=refine_bytes if refine else 0,
                     refine_from="memory" if in_memory_refine else "memory-mapped file", recall_at_10=recall(search(queries)[1]),
                     ms_per_query=time_single(search, queries, args.threads),
                     ms_per_query_batched=time_batch(search, queries, args.batch_threads))
            del index

        if "hnsw" in args.kinds and args.hnsw_size and size == min(args.sizes):
            n = min(size, args.hnsw_size)
            subset = torch.from_numpy(np.asarray(stored[:n], dtype=np.float32))
            _, subset_exact = exact_search(subset, queries, args.k)
            params = FaissParams(kind="hnsw")
            threads(args.batch_threads)
            start = time.perf_counter()
            index = FaissIndex.build(subset, params=params)
            build_s = time.perf_counter() - start
            nbytes = index.nbytes()
            for ef in args.ef_search:
                index.set_search(ef_search=ef)

                def search(q, index=index):
                    return index.search(q, args.k)

                emit(kind="hnsw", stored=n, hnsw_m=params.hnsw_m, ef_construction=params.ef_construction,
                     ef_search=ef, build_s=build_s, index_bytes=nbytes,
                     recall_at_10=recall_at_k(search(queries)[1], subset_exact, args.k),
                     ms_per_query=time_single(search, queries, args.threads),
                     ms_per_query_batched=time_batch(search, queries, args.batch_threads))
            del index, subset
        del stored

    emit(kind="end", load_average=os.getloadavg())
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
