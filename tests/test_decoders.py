"""The video decoders: torchcodec reads what decord reads (same numbering, same frames), falls back to PyAV the
same way, and a missing decoder is named before a run starts; the 8-bit resize; key-frame spacing at packing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from allinone_lab.data import DataConfig, VideoReadError, example_clips, load_clip, read_frames
from allinone_lab.data.video import frames_to_tensor


def _torchcodec_loads() -> bool:
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401
    except Exception:
        return False
    return True


needs_torchcodec = pytest.mark.skipif(not _torchcodec_loads(),
                                      reason="torchcodec or FFmpeg's shared libraries missing (.ci/install installs both)")
CLIPS = example_clips()


@needs_torchcodec
@pytest.mark.parametrize("clip", CLIPS, ids=[c.stem for c in CLIPS])
def test_torchcodec_reads_the_frames_decord_reads(clip):
    from test_data_video import read_requests  # eval, train, time and frame windows

    for (a, meta_a), (b, meta_b) in zip(read_requests(clip), read_requests(clip, "torchcodec"), strict=True):
        assert meta_a["decoder"] == "decord" and meta_b["decoder"] == "torchcodec"
        assert meta_a["indices"] == meta_b["indices"]
        assert a.shape == b.shape and b.dtype == np.uint8
        assert np.abs(a.astype(int) - b).mean() < 1.0  # the same frames (both are FFmpeg's H.264 decoder)


@needs_torchcodec
def test_load_clip_follows_the_configured_decoder():
    clip = CLIPS[0]
    meta_a, meta_b = {}, {}
    a = load_clip(clip, DataConfig(num_frames=3, image_size=64), train=True, rng=np.random.default_rng(1), meta=meta_a)
    b = load_clip(clip, DataConfig(num_frames=3, image_size=64, decoder="torchcodec"), train=True,
                  rng=np.random.default_rng(1), meta=meta_b)
    assert (meta_a["decoder"], meta_b["decoder"]) == ("decord", "torchcodec")
    assert meta_a["indices"] == meta_b["indices"] and meta_a["crop"] == meta_b["crop"]
    assert (a - b).abs().mean() < 0.02


@needs_torchcodec
def test_a_file_torchcodec_cannot_read_goes_to_pyav_and_both_reasons_are_named(tmp_path):
    path = tmp_path / "noise.mp4"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(VideoReadError) as info:
        read_frames(path, 4, decoder="torchcodec")
    first, _, second = info.value.reason.partition("; PyAV: ")
    assert first.startswith("torchcodec: undecodable") and "Invalid data found" in second


def test_a_decoder_that_cannot_load_is_named_once_before_the_run(tmp_path, monkeypatch):
    from allinone_lab.data import video
    from allinone_lab.train.preflight import check_video_files

    def missing():
        raise ImportError("decoder='torchcodec' needs the torchcodec package (no FFmpeg here)")

    monkeypatch.setattr(video, "_torchcodec_decoder", missing)
    with pytest.raises(ImportError, match="needs the torchcodec package"):
        read_frames(CLIPS[0], 2, decoder="torchcodec")
    problems = check_video_files(CLIPS, sample=4, label="msrvtt test", decoder="torchcodec")
    assert problems == ["data.decoder='torchcodec' cannot be used: decoder='torchcodec' needs the torchcodec "
                        "package (no FFmpeg here)"]
    assert check_video_files(CLIPS, sample=4, decoder="decord") == []


def test_unknown_decoder_names_the_field():
    with pytest.raises(ValueError, match=r"DataConfig.decoder='ffmpeg': expected one of \['decord', 'torchcodec'\]"):
        DataConfig(decoder="ffmpeg")
    with pytest.raises(ValueError, match="decoder='nvdec'"):
        read_frames(CLIPS[0], 2, decoder="nvdec")


@pytest.mark.parametrize("shape", [(3, 272, 640, 3), (2, 720, 1280, 3), (2, 100, 60, 3)])
def test_the_8bit_resize_matches_the_float_resize_within_a_level(shape):
    """Resized in uint8 (channels last), then cropped and normalised: against the same resize in float."""
    frames = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    cfg = DataConfig(image_size=56, resize_scale=1.25)
    meta: dict = {}
    got = frames_to_tensor(frames, cfg, train=True, rng=np.random.default_rng(4), meta=meta)
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
    x = F.interpolate(x, size=meta["resized_hw"], mode="bilinear", align_corners=False, antialias=True)
    top, left, size = meta["crop"]
    assert min(meta["resized_hw"]) == 70 and size == 56
    x = x[:, :, top:top + size, left:left + size]
    want = (x - torch.tensor(cfg.mean).view(1, 3, 1, 1)) / torch.tensor(cfg.std).view(1, 3, 1, 1)
    levels = ((got - want) * torch.tensor(cfg.std).view(1, 3, 1, 1) * 255).abs()
    assert got.shape == (shape[0], 3, 56, 56) and got.dtype == torch.float32
    assert levels.max() <= 1.5 and levels.mean() < 0.5


def test_reencoding_with_a_gop_puts_a_key_frame_at_least_every_gop_frames(tmp_path):
    import av

    from allinone_lab.data.shards import reencode_video

    bikes = next(c for c in CLIPS if c.stem == "bikes")  # 250 frames, 640x272, one key frame per 250 or so
    for short_side, gop in ((128, 16), (720, 25)):  # a smaller video keeps its size when a gop is asked for
        path = tmp_path / f"b{short_side}.mp4"
        path.write_bytes(reencode_video(bikes, short_side, gop))
        with av.open(str(path)) as c:
            stream = c.streams.video[0]
            keys = [i for i, p in enumerate(c.demux(stream)) if p.size and p.is_keyframe]
            size = (stream.codec_context.height, stream.codec_context.width)
        assert size == ((128, 302) if short_side == 128 else (272, 640))
        gaps = np.diff(keys + [250])
        assert keys[0] == 0 and gaps.max() <= gop and len(keys) >= 250 // gop  # x264 may add one at a cut
    assert reencode_video(bikes, 720) is None  # no gop, already small enough: kept as it is
