"""The paper's numbers, transcribed from *All in One: Exploring Unified Video-Language Pre-training*
(Wang et al., 2022), one :class:`PaperTable` per table or figure.

A row is a dict; ``keys`` are the columns that identify it (e.g. ``("ratio",)``) and ``match`` the key
columns a measured row must share to sit beside it (default: all of ``keys``). Missing entries of the paper
("-") are ``None``. Improvement annotations in parentheses (e.g. "52.90 (5.69↑)") are left out: they are
differences to another row of the same table. Frame counts are strings as printed ("3", "3x3", "8x2": clips
x frames). Figures without printed numbers carry the text's statements in ``claims``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PaperTable:
    key: str
    caption: str  # the paper's caption, verbatim where it has one
    keys: tuple[str, ...]
    columns: tuple[str, ...]  # reported columns (besides the keys)
    rows: tuple[dict[str, Any], ...]
    match: tuple[str, ...] | None = None
    claims: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    units: dict[str, str] = field(default_factory=dict)

    @property
    def match_keys(self) -> tuple[str, ...]:
        return self.keys if self.match is None else self.match

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "caption": self.caption, "keys": list(self.keys), "columns": list(self.columns),
                "match": list(self.match_keys), "rows": [dict(r) for r in self.rows], "claims": list(self.claims),
                "notes": list(self.notes), "units": dict(self.units)}


def _rows(header: tuple[str, ...], *values: tuple) -> tuple[dict[str, Any], ...]:
    for row in values:
        if len(row) != len(header):
            raise ValueError(f"paper row {row} has {len(row)} values for columns {header}")
    return tuple(dict(zip(header, row, strict=True)) for row in values)


_ = None  # a "-" in the paper

# Table 1 ------------------------------------------------------------------------------------------------
_T1 = ("model", "Base Model", "Initialization", "Embedding Dimension", "#Heads", "#Layers", "Params (M)",
       "Training Resolution", "Throughput (videos/s)")
TABLE1 = PaperTable(
    key="table1",
    caption="Table 1: Variants of our All-in-one architecture. The throughput is measured for videos at a "
            "resolution of 224x224. We use All-in-one-B as default without specific explanation. The ImNet is "
            "short for ImageNet.",
    keys=("model",),
    columns=_T1[1:],
    rows=_rows(_T1,
               ("All-in-one-Ti", "DeiT", "ImNet-21K", 192, 3, 12, 12.0, 224, 745.0),
               ("All-in-one-S", "DeiT", "ImNet-21K", 384, 6, 12, 33.0, 224, 285.0),
               ("All-in-one-B", "ViT", "ImNet", 768, 12, 12, 110.0, 224, 89.0)),
    notes=("The paper does not state the GPU, batch size or precision of the throughput measurement.",),
)

# Table 2 ------------------------------------------------------------------------------------------------
_T2A = ("dataset", "method", "Nets", "Params (M)", "PT Samples (M)", "frames", "Action", "Transition", "FrameQA")
_T2BC = ("dataset", "method", "frames", "Accuracy")
TABLE2 = PaperTable(
    key="table2",
    caption="Table 2: Comparison with state-of-the-art methods on VQA. The columns with gray color are open-ended "
            "VQA and the others are multiple-choice VQA. (a) Three sub-tasks on TGIF-QA test set. (b) MSRVTT-QA "
            "test set. (c) MSVD-QA test set. † means use additional large-scale VQA dataset HowToVQA60M for "
            "pretraining. * means pre-training with additional YT-Temporal 180M.",
    keys=("dataset", "method", "frames"),
    columns=("Nets", "Params (M)", "PT Samples (M)", "Action", "Transition", "FrameQA", "Accuracy"),
    rows=_rows(_T2A,
               ("TGIF-QA", "Heterogeneous", "T+V+LSTM", _, _, "35", 73.9, 77.8, 53.8),
               ("TGIF-QA", "HCRN", "T+V+LSTM", _, _, "16", 75.0, 81.4, 55.9),
               ("TGIF-QA", "QueST", "T+V+LSTM", _, _, "16", 75.9, 81.0, 59.7),
               ("TGIF-QA", "ClipBERT", "T+V+CE", 137.0, 5.6, "1x1", 82.9, 87.5, 59.4),
               ("TGIF-QA", "VIOLET", "T+V+CE", 198.0, 5.5, "16", 87.1, 93.6, _),
               ("TGIF-QA", "All-in-one-Ti", "CE", 12.0, 3.72, "3", 80.6, 83.5, 53.9),
               ("TGIF-QA", "All-in-one-S", "CE", 33.0, 3.72, "3", 91.2, 92.7, 64.0),
               ("TGIF-QA", "All-in-one-B", "CE", 110.0, 3.72, "1", 92.9, 94.2, 62.5),
               ("TGIF-QA", "All-in-one-B", "CE", 110.0, 3.72, "3", 92.7, 94.3, 64.2),
               ("TGIF-QA", "All-in-one-B [384]", "CE", 110.0, 3.72, "3", 94.7, 95.1, 65.4),
               ("TGIF-QA", "All-in-one-B*", "CE", 110.0, 9.72, "3", 95.5, 94.7, 66.3))
    + _rows(_T2BC,
            ("MSRVTT-QA", "AMU", "16", 32.5),
            ("MSRVTT-QA", "Heterogeneous", "35", 33.0),
            ("MSRVTT-QA", "HCRN", "16", 35.6),
            ("MSRVTT-QA", "ClipBERT", "4x2", 37.4),
            ("MSRVTT-QA", "VIOLET", "16", 43.1),
            ("MSRVTT-QA", "All-in-one-S", "3", 39.5),
            ("MSRVTT-QA", "All-in-one-B", "3", 42.9),
            ("MSRVTT-QA", "All-in-one-B", "3x3", 44.3),
            ("MSRVTT-QA", "All-in-one-B*", "3", 46.8),
            ("MSVD-QA", "QueST", "10", 36.1),
            ("MSVD-QA", "HCRN", "16", 36.1),
            ("MSVD-QA", "SSML", "16", 35.1),
            ("MSVD-QA", "CoMVT", "30", 42.6),
            ("MSVD-QA", "Just-Ask†", "32", 46.3),
            ("MSVD-QA", "All-in-one-S", "3", 41.7),
            ("MSVD-QA", "All-in-one-B", "3", 46.5),
            ("MSVD-QA", "All-in-one-B", "3x3", 47.9),
            ("MSVD-QA", "All-in-one-B*", "3", 48.3)),
    notes=("TGIF-QA Action and Transition are multiple-choice; FrameQA, MSRVTT-QA and MSVD-QA are open-ended.",),
)

# Table 3 ------------------------------------------------------------------------------------------------
_T3A = ("dataset", "method", "Nets", "PT Data", "Params (M)", "frames", "R@1", "R@5", "R@10")
_T3BC = ("dataset", "method", "frames", "R@1", "R@5", "R@10", "MdR")
_MSR9, _MSR7 = "MSR-VTT (9K train)", "MSR-VTT (7K train)"
TABLE3 = PaperTable(
    key="table3",
    caption="Table 3: Comparison with state-of-the-art methods on text-to-video retrieval. We gray out dual-stream "
            "networks that only do retrieval tasks. Notice that OA-Trans uses additional offline object features. "
            "(a) MSR-VTT 9K and 7K training split. (b) ActivityNet Caption v1.1 set. (c) DiDeMo test set.",
    keys=("dataset", "method", "frames", "PT Data"),
    match=("dataset", "method", "frames"),
    columns=("Nets", "PT Data", "Params (M)", "R@1", "R@5", "R@10", "MdR"),
    rows=_rows(_T3A,
               (_MSR7, "ActBERT", "T+O+V+CE", "HowTo", 275.0, "32", 16.3, 42.8, 56.9),
               (_MSR7, "ClipBERT", "T+V+CE", "COCO+VG", 137.0, "8x2", 22.0, 46.8, 59.9),
               (_MSR9, "TACo", "T+V+CE", "HowTo", 212.0, "48", 28.4, 57.8, 71.2),
               (_MSR7, "TACo", "T+V+CE", "HowTo", 212.0, "48", 24.8, 52.1, 64.0),
               (_MSR9, "VIOLET", "T+V+CE", "CC+WebVid", 198.0, "16", 34.5, 63.0, 73.4),
               (_MSR9, "Frozen", "T+V", "CC+WebVid", 232.0, "8", 31.0, 59.5, 70.5),
               (_MSR9, "OA-Trans", "T+O+V", "CC+WebVid", 232.0, "8", 35.8, 63.4, 76.5),
               (_MSR7, "OA-Trans", "T+O+V", "CC+WebVid", 232.0, "8", 32.1, 61.0, 72.9),
               (_MSR9, "All-in-one-B", "CE", "HowTo", 110.0, "3", 29.5, 63.3, 71.9),
               (_MSR7, "All-in-one-B", "CE", "HowTo", 110.0, "3", 26.5, 59.4, 69.8),
               (_MSR9, "All-in-one-B", "CE", "HowTo+WebVid", 110.0, "3", 37.1, 66.7, 75.9),
               (_MSR7, "All-in-one-B", "CE", "HowTo+WebVid", 110.0, "3", 33.8, 64.2, 74.3),
               (_MSR9, "All-in-one-B", "CE", "HowTo+WebVid", 110.0, "3x3", 37.9, 68.1, 77.1),
               (_MSR7, "All-in-one-B", "CE", "HowTo+WebVid", 110.0, "3x3", 34.4, 65.4, 75.8))
    + tuple({**row, "PT Data": None} for row in _rows(  # (b) and (c) do not list the pre-training data
        _T3BC,
            ("ActivityNet Captions", "Dense", "32", 14.0, 32.0, _, 34.0),
            ("ActivityNet Captions", "FSE", "16", 18.2, 44.8, _, 7.0),
            ("ActivityNet Captions", "HSE", "8", 20.5, 49.3, _, _),
            ("ActivityNet Captions", "ClipBERT", "4x2", 20.9, 48.6, 62.8, 6.0),
            ("ActivityNet Captions", "All-in-one-B", "3", 21.5, 50.3, 65.5, 6.0),
            ("ActivityNet Captions", "All-in-one-B", "3x3", 22.4, 53.7, 67.7, 5.0),
            ("DiDeMo", "FSE", "16", 13.9, 36.0, _, 11.0),
            ("DiDeMo", "CE", "16", 16.1, 41.1, _, 8.3),
            ("DiDeMo", "ClipBERT", "8x2", 20.4, 48.0, 60.8, 6.0),
            ("DiDeMo", "Frozen", "8", 31.0, 59.8, 72.4, 3.0),
            ("DiDeMo", "All-in-one-B", "3", 31.2, 60.5, 72.1, 3.0),
            ("DiDeMo", "All-in-one-B", "3x3", 32.7, 61.4, 73.5, 3.0))),
    notes=("Table 3(a) rows whose 9K or 7K numbers are all '-' are left out for that split.",),
)

# Table 4 ------------------------------------------------------------------------------------------------
_T4 = ("dataset", "method", "frames", "Accuracy")
TABLE4 = PaperTable(
    key="table4",
    caption="Table 4: Comparison with state-of-the-art methods on multiple-choice task. (a) MSRVTT multiple-choice "
            "test. (b) LSMDC multiple-choice test.",
    keys=("dataset", "method", "frames"),
    columns=("Accuracy",),
    rows=_rows(_T4,
               ("MSR-VTT", "JSFusion", "40", 83.4),
               ("MSR-VTT", "ActBERT", "32", 85.7),
               ("MSR-VTT", "ClipBERT", "8x2", 88.2),
               ("MSR-VTT", "All-in-one-B", "3", 91.4),
               ("MSR-VTT", "All-in-one-B", "3x3", 92.0),
               ("MSR-VTT", "All-in-one-B*", "3", 92.3),
               ("MSR-VTT", "All-in-one-B (zero-shot)", "3", 80.3),
               ("LSMDC", "JSFusion", "40", 73.5),
               ("LSMDC", "MERLOT", "8", 81.7),
               ("LSMDC", "VIOLET", "16", 82.9),
               ("LSMDC", "All-in-one-B", "3", 83.1),
               ("LSMDC", "All-in-one-B", "3x3", 83.5),
               ("LSMDC", "All-in-one-B*", "3", 84.4),
               ("LSMDC", "All-in-one-B (zero-shot)", "3", 56.3)),
)

# Table 5 ------------------------------------------------------------------------------------------------
_T5 = ("method", "PT Data", "Mask", "Accuracy")
TABLE5 = PaperTable(
    key="table5",
    caption="Table 5: The visual commonsense reasoning result with different source of pre-training data.",
    keys=("method", "PT Data", "Mask"),
    columns=("Accuracy",),
    rows=_rows(_T5,
               ("MERLOT", "CC3M+COCO", True, 58.9),
               ("MERLOT", "HowTo100M", True, 66.3),
               ("All-in-one-B", "CC3M+COCO", True, 60.5),
               ("All-in-one-B", "HowTo100M", False, 65.2),
               ("All-in-one-B", "HowTo100M", True, 68.4)),
    notes=("Mask: identities marked by coloured masks drawn around the referenced entities.",
           "The paper prints one Accuracy column without naming the VCR metric (Q->A, QA->R or Q->AR); "
           "measured rows put Q->A under it and report QA->R and Q->AR beside it."),
)

# Table 6 ------------------------------------------------------------------------------------------------
_T6 = ("init", "steps", "MLM", "ITM", "LSMDC")
TABLE6 = PaperTable(
    key="table6",
    caption="Table 6: Comparison with different initialization for All-in-one-B.",
    keys=("init", "steps"),
    match=("init",),
    columns=("steps", "MLM", "ITM", "LSMDC"),
    rows=_rows(_T6,
               ("scratch", 200_000, 58.7, 89.8, 51.4),
               ("scratch", 800_000, 62.3, 91.5, 55.5),
               ("imagenet", 200_000, 60.3, 90.5, 52.2),
               ("imagenet21k", 200_000, 60.5, 90.4, 52.5),
               ("imagenet21k", 800_000, 62.2, 92.1, 55.7)),
    notes=("MLM and ITM (video-text matching) are pre-training accuracies; LSMDC is zero-shot multiple choice.",
           "The paper's '-' initialisation is training from scratch."),
)

# Table 7 ------------------------------------------------------------------------------------------------
_T7 = ("VTM", "VTC", "dataset", "T2V R@1", "T2V R@5", "T2V R@10", "V2T R@1", "V2T R@5", "V2T R@10")
TABLE7 = PaperTable(
    key="table7",
    caption="Table 7: The text-to-video retrieval (T2V) and video-to-text retrieval (V2T) results with different "
            "objectives on finetuning for retrieval.",
    keys=("VTM", "VTC", "dataset"),
    match=("VTM", "VTC", "dataset"),  # a measured row sits only beside the paper's row of its own dataset
    columns=_T7[3:],
    rows=_rows(_T7,
               (False, True, "MSR-VTT", 36.7, 62.6, 72.2, 36.4, 62.9, 71.9),
               (False, True, "DiDeMo", 29.6, 47.3, 56.67, 29.6, 48.0, 57.2),
               (True, False, "MSR-VTT", 33.3, 67.0, 76.9, 34.4, 66.3, 76.6),
               (True, False, "DiDeMo", 30.2, 57.5, 68.7, 27.7, 59.6, 69.5),
               (True, True, "MSR-VTT", 37.1, 66.7, 75.9, 37.5, 66.1, 77.4),
               (True, True, "DiDeMo", 31.2, 59.5, 72.1, 30.4, 58.3, 69.4)),
)

# Table 8 ------------------------------------------------------------------------------------------------
_T8A = ("method", "PF", "DF", "LSMDC", "MSR-VTT")
TABLE8A = PaperTable(
    key="table8a",
    caption="Table 8: The ablation study on zero-shot multiple-choice. PF is short for pre-training frames and DF "
            "is short for downstream frames. (a) Different variations of parameter-free temporal modeling "
            "operation.",
    keys=("method",),
    columns=("PF", "DF", "LSMDC", "MSR-VTT"),
    rows=_rows(_T8A,
               ("Single Frame", 1, 1, 32.78, 67.22),
               ("Time Average", 1, 3, 35.16, 68.25),
               ("Time Average ‡", 3, 3, 47.33, 72.82),
               ("Channel Shift", 3, 3, 48.24, 73.16),
               ("Flatten", 3, 3, 51.40, 73.28),
               ("Token Rolling", 3, 3, 52.75, 75.42)),
)
_T8B = ("ratio", "LSMDC", "MSR-VTT")
TABLE8B = PaperTable(
    key="table8b",
    caption="Table 8: The ablation study on zero-shot multiple-choice. (b) The ratio of rolled tokens in Token "
            "Rolling layer. Excessive ratio lead to unstable training.",
    keys=("ratio",),
    columns=("LSMDC", "MSR-VTT"),
    rows=_rows(_T8B,
               (0.0, 47.21, 72.80),
               (0.1, 48.52, 73.59),
               (0.25, 52.90, 76.44),
               (0.5, 50.47, 74.89),
               (0.75, 44.55, 69.45)),
    notes=("Sec. 4.4.2: the All-in-one pre-training protocol except a batch size of 1024 and 100K steps.",),
)

# Table 9 ------------------------------------------------------------------------------------------------
_T9 = ("method", "Params (M)", "PT Time (hours)", "VTM", "MLM", "LSMDC", "MSR-VTT")
TABLE9 = PaperTable(
    key="table9",
    caption="Table 9: The variations of temporal modeling in the unified All-in-one. PT is short for pre-training "
            "and we report the zero-shot multiple-choice result.",
    keys=("method",),
    columns=_T9[1:],
    rows=_rows(_T9,
               ("TimeSformer", 180.5, 75.0, 91.5, 57.8, 53.2, 75.4),
               ("Decouple Attn", 192.0, 104.0, 92.3, 58.2, 52.1, 74.5),
               ("All-in-one-B", 110.0, 32.0, 90.5, 59.4, 55.7, 77.3)),
    notes=("VTM and MLM are pre-training accuracies; LSMDC and MSR-VTT zero-shot multiple choice.",),
)

# Table 10 -----------------------------------------------------------------------------------------------
_T10 = ("SPE", "MTE", "VTM", "MLM", "LSMDC", "MSR-VTT")
TABLE10 = PaperTable(
    key="table10",
    caption="Table 10: The input analysis of All-in-one-B. SPE is short for Spatio-temporal Position Embedding and "
            "MTE is short for Modality Type Embedding.",
    keys=("SPE", "MTE"),
    columns=_T10[2:],
    rows=_rows(_T10,
               (False, False, 88.1, 51.0, 53.2, 74.4),
               (True, False, 89.1, 50.8, 54.5, 76.1),
               (True, True, 90.4, 52.3, 55.7, 78.2)),
)

# Table 11 -----------------------------------------------------------------------------------------------
TABLE11A = PaperTable(
    key="table11a",
    caption="Table 11: The ablation study on zero-shot multiple-choice. (a) The begin positions to add temporal "
            "token rolling layers.",
    keys=("position",),
    columns=("LSMDC", "MSR-VTT"),
    rows=_rows(("position", "LSMDC", "MSR-VTT"), (1, 56.15, 76.16), (3, 55.34, 75.16), (6, 54.40, 73.31)),
    notes=("Position: the 1-based block of All-in-one-B (12 blocks) from which every block has a rolling layer.",),
)
TABLE11B = PaperTable(
    key="table11b",
    caption="Table 11: The ablation study on zero-shot multiple-choice. (b) Different ways of token selection.",
    keys=("method",),
    columns=("LSMDC", "MSR-VTT"),
    rows=_rows(("method", "LSMDC", "MSR-VTT"),
               ("Random Selection", 54.88, 75.03),
               ("Varying Layers", 50.83, 72.23),
               ("Block", 55.81, 76.37)),
)

# Table 12 -----------------------------------------------------------------------------------------------
_T12 = ("method", "Params (M)", "frames", "K400 Top-1", "K400 Top-5", "K400 Top-10", "HMDB51 Top-1",
        "HMDB51 Top-5", "HMDB51 Top-10")
TABLE12 = PaperTable(
    key="table12",
    caption="Table 12: The linear probe results on action recognition benchmarks with three frames over kinetics "
            "400 and hmdb51 datasets.",
    keys=("method", "frames"),
    columns=_T12[1:2] + _T12[3:],
    rows=_rows(_T12,
               ("Frozen", 232.0, "8", 50.5, 80.7, 90.2, 54.3, 88.0, 95.8),
               ("Time Average", 110.0, "3", 44.3, 75.2, 87.3, 43.1, 75.5, 90.5),
               ("All-in-one-B", 110.0, "3", 50.8, 79.8, 90.7, 52.9, 84.1, 93.4),
               ("All-in-one-B", 110.0, "8", 53.4, 83.2, 92.6, 55.7, 88.2, 95.2)),
)

# Table 13 -----------------------------------------------------------------------------------------------
_T13 = ("method", "Params (M)", "frames", "Zero-shot", "Fine-tune")
TABLE13 = PaperTable(
    key="table13",
    caption="Table 13: The multiple-choice result on first-view ego-4d benchmark.",
    keys=("method", "frames"),
    columns=("Params (M)", "Zero-shot", "Fine-tune"),
    rows=_rows(_T13,
               ("Frozen", 232.0, "8", 32.47, 60.32),
               ("Time Average", 110.0, "3", 27.34, 59.44),
               ("All-in-one-B", 110.0, "3", 36.52, 65.89)),
    notes=("Five-way multiple choice.",
           "Appendix D.2 does not say what data the Fine-tune column is fine-tuned on."),
)

# Table 14 -----------------------------------------------------------------------------------------------
_T14 = ("dataset", "N", "Visual Embedding (ms)", "Text Embedding (ms)", "Similarity Ranking (ms)")
TABLE14 = PaperTable(
    key="table14",
    caption="Table 14: Running time analysis for All-in-one during retrieval/inference. Numbers are averaged over "
            "1000 runs.",
    keys=("dataset", "N"),
    match=("N",),
    columns=_T14[2:],
    rows=_rows(_T14,
               ("MSR", 1_000, 33.16, 12.05, 1.51),
               ("HowTo100M", 128_940_000, 33.16, 12.05, 143.25)),
    notes=("Appendix E: FAISS-GPU on a server with 8 A100 GPUs and an 88-core Intel Xeon Platinum 8255C CPU; "
           "per query: text-to-video 12.05 + 143.25 = 155.3 ms, video-to-text 33.16 + 143.25 = 176.41 ms.",),
)

# Figures ------------------------------------------------------------------------------------------------
FIG3 = PaperTable(
    key="fig3",
    caption="Figure 3: The token rolling vs. flatten. By simply rolling tokens, the computation complex for "
            "Self-attention is around one third of Flatten. Not only learns correspondence cross-modality but also "
            "inter-frame.",
    keys=("frames",),
    columns=("rolling / flatten attention cost",),
    rows=_rows(("frames", "rolling / flatten attention cost"), (3, 1 / 3)),
    claims=("Flatten: self-attention over m + S n tokens costs O((m + S n)^2), about S^2 times 1-frame All-in-one.",
            "Token rolling: S self-attentions over m + n tokens, O(S (m + n)^2), around 1/S of Flatten (Sec. 3.2).",
            "At the default S = 3 frames: around one third of Flatten (the caption's approximate statement)."),
)
FIG4 = PaperTable(
    key="fig4",
    caption="Figure 4: The text to video attention weight distribution over tokens. With the Temporal Token Rolling "
            "layer, the text token pay more attention to rolled tokens, in contrast to previous centric attention.",
    keys=(), columns=(), rows=(),
    claims=("Without rolling, text tokens attend mostly to the central video tokens (an inductive bias).",
            "With token rolling, the rolled tokens contribute more to the cross-modality interaction."),
)
FIG6 = PaperTable(
    key="fig6",
    caption="Figure 6: Cloze evaluation: Given a video and its paired masked text, the model is asked to fill the "
            "masked words and show its corresponding high attention patch for this masked word.",
    keys=(), columns=(), rows=(),
    claims=("The model predicts correct nouns and verbs in most cases; wrong predictions are often near-synonyms "
            "('guy' for 'man').",
            "Word-patch correspondences are computed by optimal transport (IPOT); only weights above a threshold "
            "are shown.",
            "For verbs such as 'waving' and 'walking' the high-weight patches cover the moving regions."),
)
FIG7 = PaperTable(
    key="fig7",
    caption="Figure 7: The parameters & performance over ten downstream datasets with the varying of model size.",
    keys=("model",),
    columns=("Params (M)",),
    rows=_rows(("model", "Params (M)"), ("All-in-one-Ti", 12.0), ("All-in-one-S", 33.0), ("All-in-one-B", 110.0)),
    claims=("Model size varies from 13M (Ti) to 320M (L) over ten datasets with fine-tune, zero-shot and linear "
            "probe evaluation (Appendix A); the figure prints no per-dataset numbers.",
            "Zero-shot and linear probe: larger models are better in general.",
            "Fine-tune: All-in-one-L is sometimes worse than All-in-one-B (small datasets such as MSRVTT-QA "
            "overfit)."),
    notes=("Parameter counts of Ti/S/B are Table 1's; the text gives 13M for Ti and 320M for L.",),
)
FIG9 = PaperTable(
    key="fig9",
    caption="Figure 9: Both pretrain and finetune performance with the varying of input frames.",
    keys=("frames",), columns=("VTM", "MLM", "LSMDC", "MSR-VTT"), rows=(),
    claims=("Frames vary from 1 to 16, pre-training on WebVid2.5M only; the figure prints no numbers.",
            "More frames lead to better results in general (pre-training VTM/MLM accuracy and zero-shot multiple "
            "choice on LSMDC and MSR-VTT).",
            "At 3 frames the model is already close to the best results; 3 is the default."),
)

PAPER: dict[str, PaperTable] = {
    t.key: t
    for t in (TABLE1, TABLE2, TABLE3, TABLE4, TABLE5, TABLE6, TABLE7, TABLE8A, TABLE8B, TABLE9, TABLE10, TABLE11A,
              TABLE11B, TABLE12, TABLE13, TABLE14, FIG3, FIG4, FIG6, FIG7, FIG9)
}


def table(key: str) -> PaperTable:
    """The paper's table or figure ``key`` (``table1`` ... ``table14``, ``table8a``, ``fig3`` ...)."""
    if key not in PAPER:
        raise KeyError(f"no paper numbers under {key!r}; known keys are {sorted(PAPER)}")
    return PAPER[key]


def table_dict(key: str | None) -> dict[str, Any] | None:
    """``table(key).to_dict()``, or None when ``key`` is None or unknown."""
    return PAPER[key].to_dict() if key in PAPER else None
