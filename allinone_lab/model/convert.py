"""Convert an All-in-one checkpoint to ``OUT_DIR/model.safetensors`` + ``OUT_DIR/config.json``.

Usage::

    python -m allinone_lab.model.convert all-in-one-base.ckpt converted/base
    python -m allinone_lab.model.convert IN.ckpt OUT_DIR --num-frames 8 --no-strict

The input is read with ``torch.load(weights_only=True)``; a file that needs more (arbitrary pickled
objects) is refused unless ``--trust-pickle`` is given. Both outputs are written atomically. The exit
status is 0 on success, 1 when the checkpoint cannot be converted (the message says why).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .checkpoint import CONFIG_FILE, WEIGHTS_FILE, CheckpointError, convert_checkpoint


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m allinone_lab.model.convert",
        description="Convert a released All-in-one .ckpt (or a converted checkpoint) to safetensors + JSON.",
    )
    parser.add_argument("checkpoint", help="released .ckpt, .safetensors file, or converted directory")
    parser.add_argument("out_dir", help=f"directory that receives {WEIGHTS_FILE} and {CONFIG_FILE}")
    parser.add_argument("--no-strict", action="store_true", help="load what matches; report the rest")
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow unpickling arbitrary objects (runs code from the file: trusted sources only)",
    )
    parser.add_argument(
        "--no-shuffle-patches",
        action="store_true",
        help="record shuffle_patches=False (deterministic; the released model permutes patches)",
    )
    parser.add_argument("--num-frames", type=int, help="frames per clip (temporal_embed is resampled)")
    parser.add_argument("--image-size", type=int, help="frame size in pixels (pos_embed is resampled)")
    parser.add_argument("--max-text-len", type=int, help="text positions (the table is cut or resampled)")
    parser.add_argument("--heads", type=int, help="attention heads, for widths that are not a named variant")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {
        name: value
        for name, value in (("num_frames", args.num_frames), ("image_size", args.image_size),
                            ("max_text_len", args.max_text_len), ("heads", args.heads))
        if value is not None
    }
    try:
        report = convert_checkpoint(
            args.checkpoint,
            args.out_dir,
            strict=not args.no_strict,
            trust_pickle=args.trust_pickle,
            shuffle_patches=False if args.no_shuffle_patches else None,
            **overrides,
        )
    except (CheckpointError, ValueError, FileNotFoundError) as err:  # bad files, bad overrides
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(report)
    print(f"wrote {args.out_dir}/{WEIGHTS_FILE} and {args.out_dir}/{CONFIG_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
