"""The word probe benchmark: the side-word items it builds, its chance levels and its video-only readout."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np
import torch

from allinone_lab.data.corpus import CorpusConfig
from allinone_lab.data.text import load_tokenizer

PROBE = Path(__file__).resolve().parents[1] / "benchmarks" / "word_probe.py"


def _probe_module():
    spec = importlib.util.spec_from_file_location("word_probe", PROBE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_side_items_mask_the_side_word_of_a_still_object_in_the_outer_third():
    probe = _probe_module()
    tokenizer = load_tokenizer()
    cfg = CorpusConfig(size="cpu", image_size=64, num_frames=8, event_probs=(1.0, 0.0, 0.0, 0.0),
                       two_object_prob=0.0, tsn_segments=2, motion="bounded")
    args = argparse.Namespace(word="side", where=0.0, frames=2, axes="lrud", pan=False, also_colour=False)
    video, ids, positions, targets = probe.make_batch(np.random.default_rng(0), cfg, args, tokenizer,
                                                     train=False, size=40)
    assert video.shape == (40, 2, 3, 64, 64)
    assert torch.equal(video[:, 0], video[:, 1])  # the object stands still
    side_ids = set(tokenizer.convert_tokens_to_ids(list(probe.SIDES)))
    assert set(targets[:, 0].tolist()) == side_ids  # all four sides occur in 40 items
    assert (ids[torch.arange(40), positions[:, 0]] == tokenizer.mask_token_id).all()
    # The object (saturated pixels) lies on the side its word names.
    rgb = video[:, 0] * probe.STD[0] + probe.MEAN[0]
    saturation = rgb.amax(1) - rgb.amin(1)  # (B, H, W)
    for item in range(40):
        ys, xs = torch.nonzero(saturation[item] > 0.35, as_tuple=True)
        word = tokenizer.convert_ids_to_tokens(int(targets[item, 0]))
        centre = {"left": xs, "right": xs, "top": ys, "bottom": ys}[word].float().mean()
        assert centre < 32 if word in ("left", "top") else centre > 32, (item, word, float(centre))


def test_side_probe_runs_and_reports_the_two_way_chance():
    rows = _probe_module().main(["--word", "side", "--frames", "1", "--temporal", "none", "--width", "32",
                                 "--heads", "2", "--depth", "1", "--steps", "2", "--eval-every", "1",
                                 "--warmup", "1", "--threads", "1"])
    assert [row["step"] for row in rows] == [1, 2]
    assert all(row["chance"] == 50.0 for row in rows)


def test_frame_readout_learns_direction_from_per_frame_features():
    # Frames processed apart and read out side by side: the direction is a linear function of the features,
    # learned by a small model in a few hundred steps (97.75% at 400 steps with this seed).
    rows = _probe_module().main(["--readout", "frames", "--bounded", "--speed", "0.05", "--pos-init", "sincos",
                                 "--temporal", "none", "--width", "96", "--heads", "6", "--depth", "2",
                                 "--steps", "400", "--eval-every", "100", "--threads", "2"])
    assert rows[0]["chance"] == 25.0
    assert rows[0]["accuracy"] < 40.0  # it starts near chance ...
    assert rows[-1]["accuracy"] >= 80.0  # ... and learns the direction


def test_side_words_without_text_have_four_way_chance():
    rows = _probe_module().main(["--word", "side", "--readout", "clip", "--frames", "1", "--temporal", "none",
                                 "--width", "32", "--heads", "2", "--depth", "1", "--steps", "1", "--eval-every", "1",
                                 "--warmup", "1", "--threads", "1"])
    assert rows[0]["chance"] == 25.0
