"""Per-query search time of the exact retrieval index, beside the paper's Table 14.

Random unit vectors stand in for encoded videos (the timing does not depend on their values).
Paper (Table 14, FAISS-GPU on eight A100s): 1.51 ms for 1K stored videos, 143.25 ms for 128.9M.

    python benchmarks/retrieval_index.py                 # 1K and 1M stored embeddings, 512-d
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from allinone_lab.eval import EmbeddingIndex


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[1_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--backend", default="torch", choices=["torch", "faiss"])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    gen = torch.Generator().manual_seed(0)
    rows = []
    for size in args.sizes:
        stored = torch.nn.functional.normalize(torch.randn(size, args.dim, generator=gen), dim=-1).to(args.device)
        index = EmbeddingIndex(stored, backend=args.backend)
        queries = torch.nn.functional.normalize(torch.randn(args.queries, args.dim, generator=gen), dim=-1)
        index.search(queries[:1], args.k)  # warm-up
        single = []
        for q in queries:
            start = time.perf_counter()
            index.search(q[None], args.k)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            single.append(time.perf_counter() - start)
        index.search(queries, args.k)  # warm-up at the batched shape
        batched_runs = []
        for _ in range(3):
            start = time.perf_counter()
            index.search(queries, args.k)
            batched_runs.append((time.perf_counter() - start) / len(queries))
        batched = statistics.median(batched_runs)
        row = {"stored": size, "dim": args.dim, "k": args.k, "backend": args.backend, "device": args.device,
               "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
               "ms_per_query": round(statistics.median(single) * 1e3, 3),
               "ms_per_query_batched": round(batched * 1e3, 3)}
        print(json.dumps(row), flush=True)
        rows.append(row)
        del stored, index
    return rows


if __name__ == "__main__":
    main()
