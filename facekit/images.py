"""Reading photos safely: EXIF orientation, odd pixel formats, HEIC, camera RAW, size limits, clear reasons for bad
files."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pi_heif import register_heif_opener
from PIL import Image, ImageOps, UnidentifiedImageError

from facekit.errors import ImageError
from facekit.raw_images import develop_raw, is_raw

DEFAULT_MAX_PIXELS = 80_000_000

register_heif_opener()  # HEIC/HEIF (iPhones' photos) for Pillow: decoded by libheif, orientation applied once


@dataclass(frozen=True)
class LoadedImage:
    """An image as RGB uint8 pixels (H, W, 3), upright, with the sha256 of the file's bytes."""

    path: str
    sha256: str
    pixels: np.ndarray


def not_a_photo_file(path: str | os.PathLike[str]) -> str | None:
    """Why `path` cannot be read as a photo file (a dangling link, a folder, a pipe...), or None."""
    p = Path(path)
    try:
        mode = p.stat().st_mode  # through symbolic links
    except FileNotFoundError:
        return f"dangling symbolic link (to {os.readlink(p)})" if p.is_symlink() else "file not found"
    except PermissionError:
        return "unreadable: permission denied"
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    if stat.S_ISDIR(mode):
        if not os.access(p, os.R_OK | os.X_OK):
            return "unreadable folder (permission denied): its photos were not indexed"
        return "a folder, not a photo: `facekit index FOLDER --recursive` indexes the photos in it"
    if not stat.S_ISREG(mode):
        return "not a regular file (a pipe, socket or device)"
    return None


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes (OSError, with the reason, for anything but a regular file)."""
    problem = not_a_photo_file(path)
    if problem:
        raise OSError(problem)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _to_rgb(img: Image.Image) -> np.ndarray:
    """Any Pillow mode → RGB uint8: 16-bit and float scaled, alpha composited on white, CMYK converted."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = float(arr.max()) if arr.size else 0.0
        scale = 255.0 / hi if hi > 255 else 1.0
        grey = np.clip(arr * scale, 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if img.mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))


@contextlib.contextmanager
def _pillow_limit_off() -> Iterator[None]:
    """Pillow's own pixel limit off while a header is read: facekit's (FACEKIT_MAX_IMAGE_PIXELS) decides,
    with its own message, also above Pillow's 179 MP."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def load_image(path: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Read a photo: upright (EXIF orientation applied), RGB uint8, with its sha256. Camera RAW files (by suffix)
    are developed by LibRaw (`facekit.raw_images`).

    Raises `ImageError` with a short reason for missing, empty, non-image, corrupt, truncated and
    oversized (decompression bomb) files.
    """
    spath = str(path)
    problem = not_a_photo_file(path)
    if problem:
        raise ImageError(spath, problem)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ImageError(spath, f"cannot read file: {exc.strerror or exc}") from None
    if not data:
        raise ImageError(spath, "empty file (0 bytes)")
    if is_raw(spath):
        pixels = develop_raw(data, spath, max_pixels)
        return LoadedImage(path=spath, sha256=hashlib.sha256(data).hexdigest(), pixels=pixels)
    try:
        with _pillow_limit_off():
            img = Image.open(io.BytesIO(data))  # reads the header only: the size is checked before decoding
            width, height = img.size
            if width * height > max_pixels:
                raise ImageError(
                    spath,
                    f"image too large: {width}x{height} = {width * height} pixels exceeds the limit of "
                    f"{max_pixels} (possible decompression bomb; raise FACEKIT_MAX_IMAGE_PIXELS if it is real)",
                )
            img.load()
            img = ImageOps.exif_transpose(img)
            pixels = _to_rgb(img)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(spath, "not an image: Pillow cannot identify the file format") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(spath, f"corrupt or truncated image: {exc}") from None
    return LoadedImage(path=spath, sha256=hashlib.sha256(data).hexdigest(), pixels=pixels)


def iter_image_files(paths: Iterable[str | os.PathLike[str]], *, recursive: bool = False) -> Iterator[Path]:
    """Expand files and folders into the files to index, sorted per folder.

    Every visible entry is yielded, whatever it is, so that what is not a photo is reported with a
    reason (`load_image`: not an image, a dangling link, a pipe, a subfolder without `recursive`, an
    unreadable folder) rather than silently left out; hidden entries (".DS_Store") are. Symbolic links
    to folders are followed; a folder reached twice (two links to it, or a link loop) is read once.
    """
    seen: set[str] = set()
    for p in map(Path, paths):
        if p.is_dir():
            yield from _walk(p, recursive, seen)
        else:
            yield p


def _walk(folder: Path, recursive: bool, seen: set[str]) -> Iterator[Path]:
    real = os.path.realpath(folder)
    if real in seen:
        return
    seen.add(real)
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        yield folder  # unreadable: load_image says so
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        try:
            is_dir = entry.is_dir()  # through symbolic links
        except OSError:
            is_dir = False
        if is_dir and recursive:
            yield from _walk(path, recursive, seen)
        elif not is_dir or os.path.realpath(path) not in seen:
            yield path


def face_thumbnail(
    image_path: str | os.PathLike[str],
    bbox: Sequence[float] | None = None,
    *,
    size: int = 96,
    margin: float = 0.25,
) -> bytes:
    """A square JPEG of one face: its box (x1, y1, x2, y2) widened by `margin` on each side, or the
    whole photo without a box, scaled to `size` pixels. For labeling grids and plot hovers.

    A photo that cannot be read gives a grey square instead of an error, so one moved file does not
    break a whole grid; `load_image` says why it failed.
    """
    try:
        img = Image.fromarray(load_image(image_path).pixels)
    except ImageError:
        img = Image.new("RGB", (size, size), (128, 128, 128))
        bbox = None
    if bbox is not None:
        x1, y1, x2, y2 = map(float, bbox)
        side = max(x2 - x1, y2 - y1) * (1 + 2 * margin)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        img = img.crop((round(cx - side / 2), round(cy - side / 2), round(cx + side / 2), round(cy + side / 2)))
    img = ImageOps.fit(img, (size, size))
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=85)
    return out.getvalue()
