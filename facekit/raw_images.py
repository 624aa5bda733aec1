"""Camera RAW photos (DNG, CR2, CR3, NEF, ARW, ...): developed by LibRaw (through rawpy) into upright RGB.

Many RAW formats are TIFF files whose first image is a small preview, which Pillow can open in place of the photo (faces
too small to find), so RAW files are recognised by their suffix and never given to Pillow.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from facekit.errors import ImageError

# The RAW formats of the cameras LibRaw reads, by file suffix (lower case)
RAW_SUFFIXES = frozenset(
    {".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".sr2", ".srf", ".orf", ".rw2", ".rwl", ".raf", ".pef"}
    | {".srw", ".x3f", ".3fr", ".fff", ".iiq", ".mos", ".mef", ".mrw", ".kdc", ".k25", ".dcr", ".erf", ".ari", ".raw"}
)


def is_raw(path: str | Path) -> bool:
    """Whether `path` names a camera RAW file (by its suffix)."""
    return Path(path).suffix.lower() in RAW_SUFFIXES


def develop_raw(data: bytes, path: str, max_pixels: int) -> np.ndarray:
    """A RAW file's bytes developed as a camera would: its white balance, sRGB, 8 bits, turned upright (the file's
    orientation). Raises `ImageError` for a file LibRaw cannot read, a damaged one, or one over `max_pixels`."""
    import rawpy

    try:
        with rawpy.imread(io.BytesIO(data)) as raw:
            height, width = raw.sizes.height, raw.sizes.width
            if width * height > max_pixels:
                raise ImageError(
                    path,
                    f"image too large: {width}x{height} = {width * height} pixels exceeds the limit of "
                    f"{max_pixels} (raise FACEKIT_MAX_IMAGE_PIXELS if it is real)",
                )
            rgb = raw.postprocess(use_camera_wb=True, output_bps=8)
    except ImageError:
        raise
    except rawpy.LibRawFileUnsupportedError as exc:
        raise ImageError(path, f"not an image: a RAW suffix, but LibRaw cannot read the file ({_text(exc)})") from None
    except (rawpy.LibRawError, rawpy.NotSupportedError, OSError, ValueError) as exc:
        raise ImageError(path, f"corrupt or truncated RAW file (LibRaw: {_text(exc)})") from None
    return np.ascontiguousarray(rgb, dtype=np.uint8)


def _text(exc: Exception) -> str:
    """An exception's message; LibRaw's come as bytes."""
    message = exc.args[0] if exc.args else exc
    return message.decode(errors="replace") if isinstance(message, bytes) else str(message)
