"""Training: objectives, the one loop, optimisation, data-parallel utilities and resumable state.

Training composes the model and the data; neither knows of it.
"""

from .config import TrainConfig
from .distributed import all_gather_no_grad, all_gather_with_grad, init_from_env, is_main, rank, world_size
from .loop import NonFiniteLossError, RunResult, autocast_context, train
from .losses import mlm_loss, multiple_choice_loss, vtc_loss, vtm_loss
from .objectives import MultipleChoice, OpenEndedQA, Pretraining, Retrieval
from .optim import build_optimizer, parameter_groups, warmup_linear_schedule
from .sampler import ResumableSampler
from .state import atomic_save, atomic_write_json, load_checkpoint

__all__ = [
    "NonFiniteLossError",
    "MultipleChoice",
    "OpenEndedQA",
    "Pretraining",
    "Retrieval",
    "ResumableSampler",
    "RunResult",
    "TrainConfig",
    "all_gather_no_grad",
    "all_gather_with_grad",
    "atomic_save",
    "atomic_write_json",
    "autocast_context",
    "build_optimizer",
    "init_from_env",
    "is_main",
    "load_checkpoint",
    "mlm_loss",
    "multiple_choice_loss",
    "parameter_groups",
    "rank",
    "train",
    "vtc_loss",
    "vtm_loss",
    "warmup_linear_schedule",
    "world_size",
]
