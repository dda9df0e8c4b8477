"""faiss indexes of the retrieval index: exact flat search, IVF-PQ and HNSW recall on clustered embeddings,
files written beside the embeddings, parameters checked by name."""

import numpy as np
import pytest
import torch

from allinone_lab.eval import (
    EmbeddingIndex,
    FaissIndex,
    FaissParams,
    clustered_embeddings,
    exact_search,
    faiss_index_path,
    recall_at_k,
)

faiss = pytest.importorskip("faiss", reason="faiss is not installed (pip install faiss-cpu)")

DIM = 64
STORED = 10_000
QUERY_START = 1 << 30


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data():
    stored = clustered_embeddings(0, STORED, dim=DIM, seed=3)
    queries = clustered_embeddings(QUERY_START, QUERY_START + 200, dim=DIM, seed=3)
    return stored, queries, exact_search(stored, queries, 10)[1]


def test_clustered_embeddings_are_the_same_however_they_are_cut():
    whole = clustered_embeddings(60_000, 70_000, dim=16, seed=1)  # crosses a block boundary at 65,536
    parts = torch.cat([clustered_embeddings(a, b, dim=16, seed=1) for a, b in ((60_000, 65_000), (65_000, 70_000))])
    assert torch.equal(whole, parts)
    torch.testing.assert_close(whole.norm(dim=1), torch.ones(len(whole)))
    assert not torch.equal(whole, clustered_embeddings(60_000, 70_000, dim=16, seed=2))


def test_recall_at_k():
    exact = torch.tensor([[1, 2, 3], [4, 5, 6]])
    assert recall_at_k(exact, exact, 3) == 1.0
    assert recall_at_k(torch.tensor([[3, 2, 9], [7, 8, 9]]), exact, 3) == pytest.approx(2 / 6)
    assert recall_at_k(torch.tensor([[2, 1, 9], [4, 9, 9]]), exact, 1) == pytest.approx(1 / 2)
    with pytest.raises(ValueError, match="k=4"):
        recall_at_k(exact, exact, 4)


def test_flat_equals_torch_exact_search(data):
    stored, queries, _ = data
    ids = torch.arange(STORED) * 3 + 11
    torch_scores, torch_ids = EmbeddingIndex(stored, ids).search(queries, 10)
    for backend in ("faiss", "faiss-flat"):
        scores, found = EmbeddingIndex(stored, ids, backend=backend).search(queries, 10)
        assert torch.equal(found, torch_ids), backend
        torch.testing.assert_close(scores, torch_scores, atol=1e-5, rtol=1e-5)


def test_exact_search_scans_a_float16_memory_map_in_chunks(data, tmp_path):
    stored, queries, exact = data
    path = tmp_path / "stored.npy"
    np.save(path, stored.half().numpy())
    _, rows = exact_search(np.load(path, mmap_mode="r"), queries, 10, chunk=3_000)
    assert recall_at_k(rows, exact, 10) >= 0.99  # float16 rounding may swap near ties


# Measured on this data (10K stored, 64-d, 200 queries): IVF-PQ 0.956 (4-bit codes), 0.966 (8-bit), 0.956 with
# the graph quantizer; HNSW 0.981. The bounds leave a margin.
IVFPQ = FaissParams(kind="ivfpq", nlist=32, m=16, nbits=4, nprobe=16, refine=20)
HNSW = FaissParams(kind="hnsw", hnsw_m=16, ef_construction=40, ef_search=64)


@pytest.mark.parametrize(("params", "bound"), [(IVFPQ, 0.9), (IVFPQ.replace(nbits=8, m=8), 0.9), (HNSW, 0.95)],
                         ids=["ivfpq4", "ivfpq8", "hnsw"])
def test_compressed_indexes_recall(data, params, bound):
    stored, queries, exact = data
    index = EmbeddingIndex(stored, backend=f"faiss-{params.kind}", faiss_params=params)
    assert recall_at_k(index.search(queries, 10)[1], exact, 10) >= bound


def test_refining_and_probing_more_raise_ivfpq_recall(data):
    stored, queries, exact = data
    index = FaissIndex.build(stored, params=IVFPQ.replace(nprobe=4, refine=0))
    plain = recall_at_k(index.search(queries, 10)[1], exact, 10)
    index.set_search(refine=20)
    refined = recall_at_k(index.search(queries, 10)[1], exact, 10)
    index.set_search(nprobe=32)
    probed = recall_at_k(index.search(queries, 10)[1], exact, 10)
    assert plain < refined < probed


def test_chunked_build_with_graph_quantizer_and_ids(data):
    stored, queries, exact = data
    params = IVFPQ.replace(quantizer="hnsw")
    index = FaissIndex.trained(stored[::10], params)
    for start in range(0, STORED, 7_000):
        index.add(stored[start : start + 7_000], ids=torch.arange(start, min(STORED, start + 7_000)) + 100)
    index.vectors = stored
    assert len(index) == STORED and torch.equal(index.ids, torch.arange(STORED) + 100)
    assert recall_at_k(index.search(queries, 10)[1], exact + 100, 10) >= 0.9


@pytest.mark.parametrize("params", [IVFPQ, HNSW, FaissParams(kind="flat")], ids=lambda p: p.kind)
def test_save_and_load_beside_the_embeddings(data, tmp_path, params):
    stored, queries, _ = data
    ids = torch.arange(STORED) + 7
    backend = f"faiss-{params.kind}"
    index = EmbeddingIndex(stored, ids, backend=backend, faiss_params=params)
    path = tmp_path / "videos.safetensors"
    index.save(path)
    beside = faiss_index_path(path, params.kind)
    assert beside.is_file() and not list(tmp_path.glob(".*.tmp"))
    again = EmbeddingIndex.load(path, backend=backend, faiss_params=params)
    assert again.faiss_index.params == params
    scores, found = index.search(queries, 10)
    scores2, found2 = again.search(queries, 10)
    assert torch.equal(found, found2)
    torch.testing.assert_close(scores, scores2)
    # the saved index is used as it is, not built again
    assert faiss.serialize_index(again.faiss_index.index).tobytes() == \
        faiss.serialize_index(FaissIndex.load(beside).index).tobytes()
    if params.kind != "flat":  # a search-time change keeps the saved index; a build change rebuilds
        search_field = "nprobe" if params.kind == "ivfpq" else "ef_search"
        changed = EmbeddingIndex.load(path, backend=backend, faiss_params=params.replace(**{search_field: 8}))
        assert getattr(changed.faiss_index.params, search_field) == 8
    alone = FaissIndex.load(beside, vectors=stored)  # rows; the ids stay in the embeddings file
    assert torch.equal(ids[alone.search(queries, 10)[1]], found)


def test_load_refuses_a_file_that_is_not_an_index(tmp_path):
    (tmp_path / "x.faiss").write_bytes(b"not an index")
    with pytest.raises(ValueError, match="not an index written by FaissIndex.save"):
        FaissIndex.load(tmp_path / "x.faiss")
    with pytest.raises(FileNotFoundError, match="missing.faiss"):
        FaissIndex.load(tmp_path / "missing.faiss")


@pytest.mark.parametrize(("changes", "field"), [
    ({"kind": "lsh"}, "kind"), ({"nlist": 0}, "nlist"), ({"m": 0}, "m"), ({"nbits": 6}, "nbits"),
    ({"nprobe": 0}, "nprobe"), ({"nprobe": 33}, "nprobe"), ({"refine": -1}, "refine"),
    ({"quantizer": "pq"}, "quantizer"), ({"hnsw_m": 1}, "hnsw_m"), ({"ef_construction": 0}, "ef_construction"),
    ({"ef_search": 0}, "ef_search"), ({"m": 15}, "m"), ({"nlist": 2.5}, "nlist"), ({"nprobe": True}, "nprobe"),
])
def test_bad_parameters_are_refused_by_name(changes, field):
    with pytest.raises(ValueError, match=rf"FaissParams\.{field}="):
        IVFPQ.replace(**changes).validate()


def test_parameters_checked_against_the_data(data):
    stored, _, _ = data
    with pytest.raises(ValueError, match=r"FaissParams\.m=24: expected a divisor of the embedding size 64"):
        EmbeddingIndex(stored, backend="faiss-ivfpq", faiss_params=IVFPQ.replace(m=24, nbits=8))
    with pytest.raises(ValueError, match=r"FaissParams\.nlist=32: expected at most the 20 training vectors"):
        EmbeddingIndex(stored[:20], backend="faiss-ivfpq", faiss_params=IVFPQ)
    with pytest.raises(ValueError, match=r"faiss_params\.kind='hnsw': expected 'ivfpq'"):
        EmbeddingIndex(stored, backend="faiss-ivfpq", faiss_params=HNSW)
    with pytest.raises(ValueError, match=r"backend='annoy'"):
        EmbeddingIndex(stored, backend="annoy")
    with pytest.raises(ValueError, match="no field 'probes'"):
        IVFPQ.replace(probes=3)
    index = FaissIndex.build(stored[:2000], params=IVFPQ)
    with pytest.raises(ValueError, match="'nlist' is not a search-time parameter"):
        index.set_search(nlist=8)
    with pytest.raises(ValueError, match=r"FaissParams\.nprobe=0"):
        index.set_search(nprobe=0)
    index.vectors = None
    with pytest.raises(ValueError, match="refine=20 re-scores from the stored vectors"):
        index.search(stored[:2], 10)


def test_default_parameters_follow_the_size():
    assert FaissParams.default(count=1_000_000, dim=512) == FaissParams(
        kind="ivfpq", nlist=1024, m=128, nbits=4, nprobe=64, refine=20, quantizer="flat")
    large = FaissParams.default(count=10_000_000, dim=512)
    assert (large.nlist, large.nprobe, large.refine, large.quantizer) == (4096, 128, 50, "flat")
    table14 = FaissParams.default(count=128_900_000, dim=512)
    assert (table14.nlist, table14.nprobe, table14.quantizer) == (8192, 256, "flat")
    assert FaissParams.default(count=1_000_000_000, dim=512).quantizer == "hnsw"
    small = FaissParams.default(count=1_000, dim=512)
    assert small.nlist <= 1_000 // 39 and small.nprobe <= small.nlist
    index = EmbeddingIndex(torch.nn.functional.normalize(torch.randn(1_000, 32), dim=1), backend="faiss-ivfpq")
    assert len(index.search(torch.randn(2, 32), 10)[1][0]) == 10
