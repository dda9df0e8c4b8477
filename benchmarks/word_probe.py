"""How fast can a model of the ``cpu`` preset's size learn one kind of word from video alone?

A stripped-down learning probe for the built-in corpus: every step draws fresh motion clips (no epoch, no
memorisation), masks one word of each caption (its ``direction`` or its ``colour``) and trains only the
masked-language-model loss at that position. Accuracy on 400 fixed held-out clips (middle frames) is
printed every ``--eval-every`` steps, among the 4 directions or the 5 colours. ``--word side`` asks the
first-order spatial question instead: a still object in the outer third of the frame, captioned with its side
("... sits on the left" / "... at the top"); the caption's "on the" / "at the" gives the axis away, so chance
is 50% among left, right, top and bottom. Frames are rendered in memory by the corpus' own generator, so
there is no decoding cost and the clip distribution is exactly the corpus' (torus motion and uniform start,
or ``--bounded``: ``CorpusConfig(motion="bounded")``).

    python benchmarks/word_probe.py --word direction --steps 600
    python benchmarks/word_probe.py --bounded --speed 0.05 --pos-init sincos --temporal flatten
    python benchmarks/word_probe.py --bounded --speed 0.05 --pos-init sincos --where 0.5 --steps 900
    python benchmarks/word_probe.py --bounded --pos-init sincos --device cuda --steps 4000 --eval-every 250
    python benchmarks/word_probe.py --word direction --temporal flatten --frames 2 --stored-frames 2 --axes lr
    python benchmarks/word_probe.py --word colour --steps 300
    python benchmarks/word_probe.py --word side --frames 1 --temporal none --pos-init sincos --steps 300 --eval-every 50
    python benchmarks/word_probe.py --word direction --pan
    python benchmarks/word_probe.py --bounded --speed 0.05 --pos-init sincos --temporal none --readout frames
    python benchmarks/word_probe.py --bounded --pos-init sincos --depth 3 --heads 12 --stored-frames 3 \
        --speed 0.33 --batch-size 64 --roll-ratio 0.5 --eval-every 75   # the cpu preset's model and motion

``--readout frames`` / ``clip`` replace the masked word by a linear classifier on the video CLS tokens (per
frame, concatenated; or averaged over frames): the same question without text, which separates reading
positions within a frame from comparing frames inside the Transformer.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from allinone_lab.data.corpus import COLOURS, DIRECTIONS, CorpusConfig, clip_frames, sample_clip
from allinone_lab.data.text import load_tokenizer
from allinone_lab.data.video import sample_indices
from allinone_lab.model import ModelConfig, build_model

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
TEXT_LEN = 16
HORIZONTAL = {"up": "left", "down": "right"}
SIDES = ("left", "right", "top", "bottom")


def _where_clip(clip: dict, rng: np.random.Generator) -> tuple[str, str]:
    """Turn ``clip`` into a still object in the outer third of the frame along one axis, captioned with that
    side ("a big red circle sits on the left" / "... at the top"); returns the caption and the side word."""
    obj = clip["objects"][0]
    n, r = obj["n"], obj["radius"]
    obj.update(speed=0, direction=None, x0=int(rng.integers(r, n - r)), y0=int(rng.integers(r, n - r)))
    horizontal = rng.random() < 0.5
    key, words, place = ("x0", ("left", "right"), "on the") if horizontal else ("y0", ("top", "bottom"), "at the")
    low = rng.random() < 0.5
    third = (n - 2 * r) // 3
    obj[key] = int(rng.integers(r, r + third)) if low else int(rng.integers(n - r - third, n - r))
    word = words[0] if low else words[1]  # one of SIDES
    return f"a {obj['size']} {obj['colour']} {obj['shape']} sits {place} {word}", word


def make_batch(rng: np.random.Generator, cfg: CorpusConfig, args: argparse.Namespace, tokenizer, train: bool,
               size: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``video (B, S, C, H, W)``, masked ``ids (B, L)``, masked positions ``(B, K)`` and target ids ``(B, K)``:
    column 0 is the probed word, column 1 the colour word when ``--also-colour``."""
    videos, ids, positions, targets = [], [], [], []
    for _ in range(size):
        clip = sample_clip(rng, cfg)
        obj = clip["objects"][0]
        if args.word == "side" or (train and args.where and rng.random() < args.where):
            caption, word = _where_clip(clip, rng)
            frames, _ = clip_frames(clip, cfg)
            picked = sample_indices(cfg.num_frames, args.frames, train, rng)
            x = torch.from_numpy(frames[picked]).permute(0, 3, 1, 2).float() / 255
            videos.append((x - MEAN) / STD)
            encoded = tokenizer(caption, padding="max_length", max_length=TEXT_LEN, truncation=True)["input_ids"]
            target = tokenizer.convert_tokens_to_ids(word)
            position = encoded.index(target)
            encoded[position] = tokenizer.mask_token_id
            ids.append(encoded)
            positions.append([position])
            targets.append([target])
            continue
        if args.axes == "lr":
            obj["direction"] = HORIZONTAL.get(obj["direction"], obj["direction"])
        if args.pan:  # the whole picture (background and object) translates: motion at every patch
            dx, dy = DIRECTIONS[obj["direction"]]
            still, _ = clip_frames({**clip, "objects": [{**obj, "speed": 0}]}, cfg)
            frames = np.stack([np.roll(still[t], (dy * obj["speed"] * t, dx * obj["speed"] * t), axis=(0, 1))
                               for t in range(cfg.num_frames)])
        else:
            frames, _ = clip_frames(clip, cfg)
        picked = sample_indices(cfg.num_frames, args.frames, train, rng)
        x = torch.from_numpy(frames[picked]).permute(0, 3, 1, 2).float() / 255
        videos.append((x - MEAN) / STD)
        caption = clip["template"].format(adj=f"{obj['size']} {obj['colour']}", shape=obj["shape"],
                                          dir=obj["direction"])
        encoded = tokenizer(caption, padding="max_length", max_length=TEXT_LEN, truncation=True)["input_ids"]
        words = [args.word] + (["colour"] if args.also_colour and args.word != "colour" else [])
        target = [tokenizer.convert_tokens_to_ids(obj[word]) for word in words]
        position = [encoded.index(t) for t in target]
        for p in position:
            encoded[p] = tokenizer.mask_token_id
        ids.append(encoded)
        positions.append(position)
        targets.append(target)
    return torch.stack(videos), torch.tensor(ids), torch.tensor(positions), torch.tensor(targets)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--word", choices=("direction", "colour", "side"), default="direction",
                        help="side: still objects captioned with their side of the frame (a spatial baseline)")
    parser.add_argument("--where", type=float, default=0.0,
                        help="share of training clips replaced by a still object captioned with its side of the "
                             "frame (left/right/top/bottom), that side word masked")
    parser.add_argument("--readout", choices=("mask", "frames", "clip"), default="mask",
                        help="mask: the MLM head at the masked word (the default); frames: a linear classifier on "
                             "the video CLS of every frame, concatenated (no text); clip: the same on their mean")
    parser.add_argument("--also-colour", action="store_true",
                        help="mask the colour word too and train on both (accuracy stays on --word)")
    parser.add_argument("--temporal", default="roll", help="model.temporal: roll | none | flatten | ...")
    parser.add_argument("--roll-ratio", type=float, default=0.25)
    parser.add_argument("--roll-selection", default="block", help="model.roll_selection: block | random | varying | alternating")
    parser.add_argument("--shuffle-patches", action="store_true",
                        help="model.shuffle_patches: permute each frame's patches before the blocks")
    parser.add_argument("--frames", type=int, default=3, help="frames the model sees (TSN segments)")
    parser.add_argument("--stored-frames", type=int, default=8, help="frames rendered per clip")
    parser.add_argument("--speed", type=float, default=None, help="px per stored frame / frame size")
    parser.add_argument("--axes", choices=("lrud", "lr"), default="lrud", help="lr: horizontal motion only")
    parser.add_argument("--pan", action="store_true",
                        help="translate the whole picture with the object (a camera pan) instead of the object alone")
    parser.add_argument("--bounded", action="store_true",
                        help="no wrap-around: starts drawn so that the object stays inside the frame")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--pos-init", default="random", help="model.pos_embed_init: random | sincos")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--patch-size", type=int, default=16)
    parser.add_argument("--width", type=int, default=192)
    parser.add_argument("--heads", type=int, default=3)
    parser.add_argument("--depth", type=int, default=6)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    if args.word == "side" and (args.where or args.also_colour or args.pan):
        parser.error("--word side excludes --where, --also-colour and --pan")
    if args.readout != "mask" and (args.where or args.also_colour):
        parser.error("--readout frames/clip classifies the probed word only (no --where, no --also-colour)")
    if args.where and args.also_colour:
        parser.error("--where and --also-colour exclude each other (one masked word per caption)")
    if args.bounded and args.pan:
        parser.error("--bounded and --pan exclude each other (a pan wraps the whole picture)")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    cfg = CorpusConfig(size="cpu", image_size=args.image_size, num_frames=args.stored_frames,
                       event_probs=(1.0, 0.0, 0.0, 0.0), two_object_prob=0.0, speed=args.speed,
                       tsn_segments=args.frames, motion="bounded" if args.bounded else "torus")
    tokenizer = load_tokenizer()
    model = build_model(ModelConfig(variant="tiny", width=args.width, heads=args.heads, depth=args.depth,
                                    image_size=args.image_size, patch_size=args.patch_size,
                                    num_frames=args.frames, max_text_len=TEXT_LEN, drop_path_rate=0.0,
                                    temporal=args.temporal, roll_ratio=args.roll_ratio,
                                    pos_embed_init=args.pos_init, roll_selection=args.roll_selection,
                                    shuffle_patches=args.shuffle_patches)).to(device)
    words = {"direction": list(DIRECTIONS), "colour": list(COLOURS), "side": list(SIDES)}[args.word]
    head = None  # --readout frames / clip: a linear classifier on the video CLS, no text at all
    if args.readout != "mask":
        features = args.width * (args.frames if args.readout == "frames" else 1)
        head = torch.nn.Linear(features, len(words)).to(device)
    params = list(model.parameters()) + (list(head.parameters()) if head is not None else [])
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01, betas=(0.9, 0.98))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / args.warmup) * max(0.0, 1 - s / args.steps))
    # Side words: the caption names the axis, so a masked-word readout chooses between two; without text, four.
    two_way = (args.word == "side" and args.readout == "mask") or (args.word == "direction" and args.axes == "lr")
    chance = 50.0 if two_way else round(100.0 / len(words), 1)
    candidates = torch.tensor(tokenizer.convert_tokens_to_ids(words), device=device)
    held_out = [t.to(device) for t in make_batch(np.random.default_rng(12345), cfg, args, tokenizer, train=False,
                                                 size=400)]

    def classify(video: Tensor) -> Tensor:
        """``(B, len(words))`` logits of the linear head on the per-frame video CLS features."""
        cls = model(video).video_frame_tokens[:, :, 0]  # (B, S, D)
        return head(cls.flatten(1) if args.readout == "frames" else cls.mean(1))

    @torch.no_grad()
    def accuracy() -> float:
        model.eval()
        correct = 0
        for start in range(0, 400, 100):
            video, ids, positions, targets = (t[start:start + 100] for t in held_out)
            if head is not None:
                correct += int((candidates[classify(video).argmax(-1)] == targets[:, 0]).sum())
                continue
            out = model(video, ids, (ids != 0).long())
            logits = model.mlm_logits(out)[torch.arange(len(ids), device=device), positions[:, 0]][:, candidates]
            correct += int((candidates[logits.argmax(-1)] == targets[:, 0]).sum())
        model.train()
        return 100.0 * correct / 400

    rng = np.random.default_rng(args.seed)
    rows, start = [], time.perf_counter()
    for step in range(1, args.steps + 1):
        video, ids, positions, targets = (t.to(device) for t in make_batch(rng, cfg, args, tokenizer, train=True,
                                                                          size=args.batch_size))
        if head is not None:
            labels = (targets[:, :1] == candidates[None]).long().argmax(1)  # index of the word among `words`
            loss = F.cross_entropy(classify(video), labels)
        else:
            out = model(video, ids, (ids != 0).long())
            hidden = out.text_tokens[torch.arange(len(ids), device=device)[:, None], positions]  # (B, K, D)
            loss = F.cross_entropy(model.mlm_head(hidden).flatten(0, 1), targets.flatten())
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        if step % args.eval_every == 0:
            rows.append({"step": step, "loss": round(loss.item(), 3), "accuracy": accuracy(), "chance": chance,
                         "seconds": round(time.perf_counter() - start, 1)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


if __name__ == "__main__":
    main()
