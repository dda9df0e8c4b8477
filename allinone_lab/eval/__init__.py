"""Evaluation: retrieval ranks with a stated tie policy, accuracies, a retrieval index."""

from .index import EmbeddingIndex
from .metrics import TIE_POLICIES, accuracy, rank_metrics, ranks, retrieval_metrics, topk_accuracy

__all__ = ["EmbeddingIndex", "TIE_POLICIES", "accuracy", "rank_metrics", "ranks", "retrieval_metrics", "topk_accuracy"]
