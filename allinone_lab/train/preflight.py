"""Checks before a long run: everything it will need, verified in seconds, reported all at once.

A run that finds a missing weight file, an unwritable output folder or a corrupt video after hours of
compute has wasted them. :class:`Preflight` collects problems from small check functions (each returns a
list of readable strings, empty when fine) and :meth:`Preflight.raise_if_any` stops with ONE
:class:`PreflightError` listing every problem, so that they can all be fixed before the next attempt.

Each problem names the thing (dataset, split and file; weight file; directory) and says how to fix it.
Checks never raise for a problem they find; a check that crashes becomes a problem naming the check.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..model.pretrained import check_init_weights

__all__ = [
    "Preflight",
    "PreflightError",
    "check_free_disk",
    "check_init_weights",
    "check_output_dir",
    "check_video_files",
    "checkpoint_bytes",
]

GIB = 1024**3
MISSING_SHOWN = 5  # missing files named one by one; beyond that, a count and the first few


class PreflightError(RuntimeError):
    """Problems found before any work started. ``problems`` holds them, one string each; the message lists
    them all under a first line that counts them."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = [str(p) for p in problems]
        n = len(self.problems)
        lines = [f"preflight found {n} problem{'' if n == 1 else 's'} before any work:"]
        for problem in self.problems:
            first, *rest = problem.strip("\n").splitlines() or [""]
            lines.append(f"- {first}")
            lines.extend(f"  {line}" for line in rest)  # continuation lines stay under their bullet
        super().__init__("\n".join(lines))

    def __reduce__(self):  # picklable across processes
        return (PreflightError, (self.problems,))


class Preflight:
    """Collects problems from checks, then raises them together. Typical use::

        pre = Preflight()
        pre.check(check_init_weights, exp.model)
        pre.check(check_output_dir, run_dir)
        pre.check(check_free_disk, run_dir, checkpoint_bytes(sum(p.numel() for p in model.parameters())))
        pre.check(check_video_files, paths, 2, "msrvtt train")
        pre.raise_if_any()  # one PreflightError listing every problem, or nothing
    """

    def __init__(self) -> None:
        self.problems: list[str] = []

    def add(self, problem: str) -> None:
        """Record one problem (a readable string naming the thing and the fix)."""
        self.problems.append(str(problem))

    def check(self, fn: Callable[..., Iterable[str] | None], *args: Any, **kwargs: Any) -> list[str]:
        """Run ``fn(*args, **kwargs)``, a check returning a list of problems, and record them. An exception
        inside the check is recorded as a problem naming the check (the other checks still run). Returns the
        problems this check added."""
        name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
        try:
            found = fn(*args, **kwargs)
            found = [] if found is None else [found] if isinstance(found, str) else [str(p) for p in found]
        except Exception as error:  # a crashing check must not hide the other problems
            shown = ", ".join([*(repr(a) for a in args), *(f"{k}={v!r}" for k, v in kwargs.items())])
            if len(shown) > 200:
                shown = shown[:197] + "..."
            found = [f"check {name}({shown}) failed unexpectedly ({type(error).__name__}: {error}); "
                     "this is a bug in the check or an unusual environment, see the traceback by calling it"]
        self.problems.extend(found)
        return found

    @property
    def ok(self) -> bool:
        """True when no problem has been recorded."""
        return not self.problems

    def raise_if_any(self) -> None:
        """Raise :class:`PreflightError` with every recorded problem; return quietly when there is none."""
        if self.problems:
            raise PreflightError(self.problems)


# Directories and disk --------------------------------------------------------------------------------
def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (``lexists``: a dangling link counts as existing)."""
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(path.anchor or ".")


def check_output_dir(path: str | os.PathLike) -> list[str]:
    """Whether ``path`` can be the output directory of a run: it is (or can be created as) a directory in
    which a file can be written. Verified by doing it: missing folders are created, a temporary file is
    written and removed, and folders this check created are removed again, so nothing is left behind."""
    path = Path(path).expanduser().absolute()
    where = f"output directory {str(path)!r}"
    if path.exists() and not path.is_dir():
        return [f"{where} exists and is not a directory; remove it or choose another output path"]
    existing = _nearest_existing(path)
    if not existing.is_dir():
        kind = "a regular file" if existing.is_file() else "not a directory"
        return [f"{where} cannot be created: {str(existing)!r} on its path is {kind}; "
                "remove it or choose another output path"]
    created = [p for p in (path, *path.parents) if not os.path.lexists(p)]
    problems: list[str] = []
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return [f"{where} cannot be created in {str(existing)!r} ({error.strerror or error}); make that "
                "directory writable for this user or choose another output path"]
    try:
        fd, tmp = tempfile.mkstemp(prefix=".preflight-", dir=path)
        try:
            os.write(fd, b"preflight\n")
        finally:
            os.close(fd)
            os.unlink(tmp)
    except OSError as error:
        problems.append(f"{where} is not writable ({error.strerror or error}); make it writable for this "
                        "user or choose another output path")
    for folder in created:  # deepest first, as listed
        try:
            folder.rmdir()
        except OSError:
            break
    return problems


def check_free_disk(path: str | os.PathLike, need_bytes: int) -> list[str]:
    """Whether the filesystem that will hold ``path`` has ``need_bytes`` free, measured with
    ``shutil.disk_usage`` on its nearest existing ancestor (``path`` itself need not exist yet)."""
    if need_bytes < 0:
        raise ValueError(f"check_free_disk: need_bytes={need_bytes} must be >= 0")
    path = Path(path).expanduser().absolute()
    existing = _nearest_existing(path)
    probe = existing if existing.is_dir() else existing.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError as error:
        return [f"free disk space for {str(path)!r} cannot be measured at {str(probe)!r} "
                f"({error.strerror or error})"]
    if free < need_bytes:
        return [f"not enough disk space for {str(path)!r}: need {need_bytes / GIB:.2f} GiB, "
                f"{free / GIB:.2f} GiB free on the filesystem of {str(probe)!r}; free some space or choose "
                "an output directory on another disk"]
    return []


def checkpoint_bytes(num_parameters: int, copies: int = 2) -> int:
    """Disk space for ``copies`` training checkpoints of a model with ``num_parameters`` parameters.

    One checkpoint holds fp32 weights and AdamW's two fp32 moment buffers, 12 bytes per parameter, plus a
    margin of 5% and 16 MiB for buffers, scheduler, RNG states and serialisation overhead. The default of
    two copies is ``last.pt`` plus the temporary file it is atomically written through; count three when a
    ``best.pt`` is kept as well.
    """
    if num_parameters < 0:
        raise ValueError(f"checkpoint_bytes: num_parameters={num_parameters} must be >= 0")
    if copies < 1:
        raise ValueError(f"checkpoint_bytes: copies={copies} must be >= 1")
    one = 12 * num_parameters
    return copies * (one + one // 20 + 16 * 1024**2)


# Data ------------------------------------------------------------------------------------------------
def check_video_files(paths: Iterable[str | os.PathLike], sample: int = 2, label: str = "",
                      decoder: str = "decord") -> list[str]:
    """Whether the clips a run will read are there and decode.

    Every path must exist (a cheap ``stat``; more than a few missing files are summarised with a count);
    the first ``sample`` existing ones must decode at least one frame with the toolkit's reader
    (:func:`allinone_lab.data.video.read_frames`: ``decoder`` for videos, PyAV where it fails, PIL for images
    and GIFs). Problems name the file and the reader's reason; a decoder that cannot load (torchcodec without
    FFmpeg's libraries) is one problem naming ``data.decoder``. ``label`` (e.g. ``"msrvtt test"``) prefixes each problem to say
    which dataset and split the files belong to.
    """
    from ..data.video import VideoReadError, read_frames

    prefix = f"{label}: " if label else ""
    paths = [Path(p) for p in paths]
    missing = [p for p in paths if not os.path.lexists(p)]
    problems: list[str] = []
    fix = "check the dataset's root/video folder setting or fetch the missing files"
    if len(missing) <= MISSING_SHOWN:
        problems.extend(f"{prefix}video file {str(p)!r} does not exist; {fix}" for p in missing)
    else:
        shown = ", ".join(repr(str(p)) for p in missing[:3])
        problems.append(f"{prefix}{len(missing)} of {len(paths)} video files do not exist, e.g. {shown}; "
                        f"{fix}")
    gone = set(missing)
    for path in [p for p in paths if p not in gone][:max(0, sample)]:
        try:
            frames = read_frames(path, num_frames=1, decoder=decoder)
            if frames.shape[0] < 1:
                problems.append(f"{prefix}video file {str(path)!r} decoded to no frames; replace the file")
        except VideoReadError as error:
            problems.append(f"{prefix}video file {str(path)!r} cannot be read: {error.reason}; "
                            "replace or re-download the file")
        except ImportError as error:  # the decoder itself is missing: one problem, not one per file
            problems.append(f"data.decoder={decoder!r} cannot be used: {error}")
            break
        except Exception as error:  # a reader bug or an exotic file: still one named problem
            problems.append(f"{prefix}video file {str(path)!r} cannot be read "
                            f"({type(error).__name__}: {error}); replace or re-download the file")
    return problems
