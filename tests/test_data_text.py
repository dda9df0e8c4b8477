"""Tokenizer offline fallback, MLM masking (80/10/10, whole word, temporal words) and VTM pairing."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # tests never touch the network
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from allinone_lab.data import DataConfig, TextProcessor, load_tokenizer, vtm_partner  # noqa: E402
from allinone_lab.data.text import _CACHE, packaged_vocab_path  # noqa: E402


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


def test_tokenizer_is_bert_base_uncased_offline(tok):
    assert len(tok) == 30522
    ids = tok("A red circle moves left")["input_ids"]
    assert tok.convert_ids_to_tokens(ids) == ["[CLS]", "a", "red", "circle", "moves", "left", "[SEP]"]
    assert ids[0] == 101 and ids[-1] == 102 and tok.mask_token_id == 103 and tok.pad_token_id == 0
    assert tok.init_kwargs["allinone_source"].startswith(("hf-cache", "package:"))


def test_explicit_path_comes_first(tmp_path):
    vocab = packaged_vocab_path()
    assert vocab is not None
    copy = tmp_path / "vocab.txt"
    copy.write_text(vocab.read_text(encoding="utf-8"), encoding="utf-8")
    t = load_tokenizer(copy)
    assert t.init_kwargs["allinone_source"] == f"path:{copy}"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_tokenizer(tmp_path / "nope.txt")


def test_no_offline_source_and_hub_disallowed_raises(monkeypatch):
    import allinone_lab.data.text as text

    monkeypatch.setattr(text, "packaged_vocab_path", lambda: None)
    monkeypatch.setitem(os.environ, "HF_HUB_CACHE", "/nonexistent-cache")
    _CACHE.pop("None", None)
    try:
        from transformers import BertTokenizerFast

        monkeypatch.setattr(
            BertTokenizerFast,
            "from_pretrained",
            classmethod(lambda cls, *a, **k: (_ for _ in ()).throw(OSError("x"))),
        )
        with pytest.raises(RuntimeError, match="no offline bert-base-uncased vocabulary"):
            text.load_tokenizer(allow_hub=False)
    finally:
        _CACHE.pop("None", None)


def test_encode_pads_to_max_len(tok):
    p = TextProcessor(DataConfig(max_text_len=12), tok)
    e = p.encode("a red circle moves left")
    assert e.input_ids.shape == (12,) and e.input_ids.dtype.is_floating_point is False
    assert str(e.input_ids.dtype) == "torch.int64"
    assert e.attention_mask.tolist() == [1] * 7 + [0] * 5
    assert e.input_ids[7:].tolist() == [0] * 5
    long = p.encode(" ".join(["word"] * 50))
    assert long.input_ids.shape == (12,) and long.input_ids[-1].item() == 102


def test_mlm_statistics_80_10_10(tok):
    p = TextProcessor(DataConfig(max_text_len=64), tok)
    text = " ".join(["the quick brown fox jumps over the lazy dog"] * 6)
    base = p.encode(text)
    rng = np.random.default_rng(0)
    chosen = masked = kept = rand = cand_total = 0
    for _ in range(400):
        m = p.mask(base, rng)
        sel = m.mlm_labels != -100
        cand_total += int((base.attention_mask == 1).sum()) - 2
        chosen += int(sel.sum())
        assert (m.mlm_labels[sel] == base.input_ids[sel]).all()
        masked += int((m.input_ids[sel] == 103).sum())
        kept += int((m.input_ids[sel] == base.input_ids[sel]).sum())
        rand += int(((m.input_ids[sel] != 103) & (m.input_ids[sel] != base.input_ids[sel])).sum())
        assert (m.input_ids[~sel] == base.input_ids[~sel]).all()
        assert m.input_ids[0] == 101 and (m.mlm_labels[base.attention_mask == 0] == -100).all()
    assert abs(chosen / cand_total - 0.15) < 0.01
    assert (
        abs(masked / chosen - 0.8) < 0.02
        and abs(kept / chosen - 0.1) < 0.02
        and abs(rand / chosen - 0.1) < 0.02
    )


def test_mlm_deterministic_and_never_empty(tok):
    p = TextProcessor(DataConfig(max_text_len=16), tok)
    a = p.mask("a red circle", np.random.default_rng(5))
    b = p.mask("a red circle", np.random.default_rng(5))
    assert a.input_ids.tolist() == b.input_ids.tolist() and a.mlm_labels.tolist() == b.mlm_labels.tolist()
    for s in range(50):
        assert (p.mask("cat", np.random.default_rng(s)).mlm_labels != -100).sum() == 1


def test_whole_word_masking_masks_all_pieces(tok):
    text = "unbelievably " * 10  # un ##bel ##ie ##va ##bly
    pieces = tok.tokenize("unbelievably")
    assert len(pieces) > 1
    p = TextProcessor(DataConfig(max_text_len=64, whole_word_mask=True), tok)
    rng = np.random.default_rng(0)
    for _ in range(50):
        m = p.mask(text, rng)
        sel = (m.mlm_labels != -100).numpy()[1 : 1 + 10 * len(pieces)].reshape(10, len(pieces))
        assert (sel.all(1) | ~sel.any(1)).all()  # each word fully chosen or not at all
        assert sel.any()


def test_temporal_word_mask_prob_targets_directions(tok):
    text = "a red circle moves left and a blue square moves up"
    base_cfg = DataConfig(max_text_len=20)
    left = tok.convert_tokens_to_ids("left")

    def rate(cfg):
        p = TextProcessor(cfg, tok)
        rng = np.random.default_rng(1)
        return np.mean([(p.mask(text, rng).mlm_labels == left).any().item() for _ in range(300)])

    assert rate(base_cfg) < 0.3
    assert rate(base_cfg.replace(temporal_word_mask_prob=0.9)) > 0.85
    assert rate(base_cfg.replace(temporal_word_mask_prob=0.9, whole_word_mask=True)) > 0.85


def test_vtm_partner_half_negatives_never_self():
    rng = np.random.default_rng(0)
    out = [vtm_partner(3, 10, rng) for _ in range(2000)]
    labels = np.array([lab for _, lab in out])
    assert abs(labels.mean() - 0.5) < 0.04
    assert all((j == 3) == (lab == 1) for j, lab in out)
    assert {j for j, lab in out if lab == 0} == set(range(10)) - {3}
    assert vtm_partner(0, 1, rng) == (0, 1)


def test_hf_cache_comes_before_the_packaged_vocab(tmp_path):
    import subprocess
    import sys

    snap = tmp_path / "models--bert-base-uncased" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    (tmp_path / "models--bert-base-uncased" / "refs").mkdir()
    (tmp_path / "models--bert-base-uncased" / "refs" / "main").write_text("abc")
    (snap / "vocab.txt").write_text(packaged_vocab_path().read_text(encoding="utf-8"), encoding="utf-8")
    (snap / "tokenizer_config.json").write_text('{"do_lower_case": true}')
    code = "from allinone_lab.data import load_tokenizer; t = load_tokenizer(); print(t.init_kwargs['allinone_source'], len(t))"
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["hf-cache", "30522"]
    env["HF_HUB_CACHE"] = str(tmp_path / "empty")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.stdout.split()[0].startswith("package:")
