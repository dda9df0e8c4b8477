"""What every configuration dataclass shares: validated copies and plain-dict round trips."""

from __future__ import annotations

import dataclasses
from typing import Any, Self


class ConfigBase:
    """Mixin for the ``@dataclass`` configurations (model, data, training)."""

    def validate(self) -> None:  # overridden: raise ValueError naming the field and the expected value
        return None

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Self:
        """Build from a plain dict (``config.json``); unknown keys are refused by name."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown field(s) {unknown}; known fields are {sorted(known)}")
        return cls(**values)
