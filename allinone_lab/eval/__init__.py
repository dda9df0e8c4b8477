"""Evaluation: retrieval ranks with a stated tie policy, accuracies, a retrieval index, task routines.

Evaluation composes the model with batches from the data; it does not train.
"""

from .index import (
    BACKENDS,
    FAISS_KINDS,
    EmbeddingIndex,
    FaissIndex,
    FaissParams,
    clustered_embeddings,
    exact_search,
    faiss_index_path,
    recall_at_k,
)
from .metrics import TIE_POLICIES, accuracy, rank_metrics, ranks, retrieval_metrics, topk_accuracy
from .tasks import (
    cloze_confusion,
    encode_sharded,
    encode_texts,
    encode_videos,
    evaluate_cloze,
    evaluate_multiple_choice,
    evaluate_open_ended_qa,
    evaluate_retrieval,
    evaluate_retrieval_sharded,
    extract_features,
    linear_probe,
    over_clips,
    rerank_with_vtm,
)

__all__ = [
    "BACKENDS",
    "EmbeddingIndex",
    "FAISS_KINDS",
    "FaissIndex",
    "FaissParams",
    "TIE_POLICIES",
    "accuracy",
    "cloze_confusion",
    "clustered_embeddings",
    "encode_sharded",
    "encode_texts",
    "encode_videos",
    "evaluate_cloze",
    "evaluate_multiple_choice",
    "evaluate_open_ended_qa",
    "evaluate_retrieval",
    "evaluate_retrieval_sharded",
    "exact_search",
    "extract_features",
    "faiss_index_path",
    "linear_probe",
    "over_clips",
    "rank_metrics",
    "recall_at_k",
    "ranks",
    "rerank_with_vtm",
    "retrieval_metrics",
    "topk_accuracy",
]
