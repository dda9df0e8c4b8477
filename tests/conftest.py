"""Shared test fixtures. Tests never touch the network."""

import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The built-in corpus is generated into a throw-away cache, not the user's ~/.cache.
os.environ.setdefault("ALLINONE_DATA_CACHE", tempfile.mkdtemp(prefix="allinone-test-cache-"))
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
