"""Training configuration: every optimisation and bookkeeping hyper-parameter in one dataclass."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..configbase import ConfigBase

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass
class TrainConfig(ConfigBase):
    """How a run optimises and what it records.

    ``batch_size`` is per process; ``global_batch_size`` (None: ``batch_size * processes``) sets gradient
    accumulation: ``global_batch_size / (batch_size * processes)`` micro-batches per optimizer step.
    """

    max_steps: int = 200_000
    batch_size: int = 16
    global_batch_size: int | None = None
    lr: float = 1e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_ratio: float = 0.1
    grad_clip: float | None = 1.0
    precision: str = "auto"  # auto: bf16 autocast on CUDA (fp16 where bf16 is unsupported), fp32 on CPU
    loss_weights: dict[str, float] = field(default_factory=lambda: {"vtm": 1.0, "mlm": 1.0})
    checkpoint_every: int = 1000
    log_every: int = 50
    # DataLoader worker processes; None: chosen for the device (train.loop.loader_workers): on a CPU one if a
    # core is left beside the compute threads, else none; up to four per process feeding a GPU.
    num_workers: int | None = None
    seed: int = 0
    device: str = "auto"
    # Evaluate on at most this many items of each evaluation split (validation, test, zero-shot, the linear
    # probe's features): a rehearsal's budget, so that a run on a real data root stays short. None: all.
    max_eval_items: int | None = None

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)
        self.validate()

    def validate(self) -> None:
        def bad(name: str, expected: str) -> ValueError:
            return ValueError(f"TrainConfig.{name}={getattr(self, name)!r}: expected {expected}")

        for name in ("max_steps", "batch_size", "checkpoint_every", "log_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise bad(name, "an integer >= 1")
        if self.global_batch_size is not None and self.global_batch_size % self.batch_size:
            raise bad("global_batch_size", f"a multiple of batch_size={self.batch_size}")
        if self.lr <= 0:
            raise bad("lr", "a positive learning rate")
        if not 0 <= self.warmup_ratio < 1:
            raise bad("warmup_ratio", "a fraction in [0, 1)")
        if self.precision not in PRECISIONS:
            raise bad("precision", f"one of {list(PRECISIONS)}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise bad("grad_clip", "a positive norm or None")
        if self.num_workers is not None and (not isinstance(self.num_workers, int) or self.num_workers < 0):
            raise bad("num_workers", "an integer >= 0, or None (chosen for the device)")
        if self.max_eval_items is not None and (not isinstance(self.max_eval_items, int) or self.max_eval_items < 1):
            raise bad("max_eval_items", "None or an integer >= 1")

