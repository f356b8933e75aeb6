"""The one image loader: decode image and label files into numpy, write PNGs atomically.

    img = load_image("photo.jpg")          # [H, W, 3] uint8 RGB, EXIF orientation applied
    lab = load_label_png("ann.png")        # [H, W] palette / grey indices (uint8 or uint16/int32)
    save_png("out.png", lab, overwrite=False)

Every failure (missing, unreadable, corrupt, truncated) is a one-line KnetError naming the path.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from knet.errors import KnetError
from knet.fileio import atomic_write_bytes

# Decompression-bomb guard stays on, but real datasets hold large panoramas: allow 1 gigapixel.
Image.MAX_IMAGE_PIXELS = 1 << 30

_DECODE_ERRORS = (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError)


def _open(path: str | os.PathLike, what: str) -> Image.Image:
    p = Path(path)
    if not p.exists():
        raise KnetError(f"{what} not found: {p}")
    if p.is_dir():
        raise KnetError(f"{what} {p} is a directory, not a file")
    try:
        im = Image.open(p)
        im.load()  # force the full decode so truncated files fail here, not later
    except PermissionError:
        raise KnetError(f"{what} {p} is not readable (permission denied)") from None
    except _DECODE_ERRORS as exc:
        detail = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise KnetError(f"{what} {p} is corrupt or not an image ({detail})") from None
    return im


def _to_rgb_uint8(im: Image.Image) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im).astype(np.float64)  # [H, W]
        if im.mode.startswith("I;16"):
            arr = arr / 257.0
        else:
            lo, hi = float(arr.min(initial=0.0)), float(arr.max(initial=0.0))
            if hi > 255.0 or lo < 0.0:  # scale wide ranges into 8 bits
                arr = (arr - lo) * (255.0 / max(hi - lo, 1e-12))
        grey = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        base = Image.new("RGBA", rgba.size, (255, 255, 255, 255))  # composite on white
        return np.asarray(Image.alpha_composite(base, rgba).convert("RGB"))
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im)


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file into a C-contiguous [H, W, 3] uint8 RGB array.

    EXIF orientation is applied; grey, palette, CMYK, RGBA (composited on white) and 16-bit
    images are converted. Raises KnetError naming `path` when it is missing or corrupt.
    """
    im = _open(path, "image")
    try:
        im = ImageOps.exif_transpose(im)
    except _DECODE_ERRORS:  # a broken EXIF block: keep the pixels as stored
        pass
    arr = _to_rgb_uint8(im)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise KnetError(f"image {path} has an unsupported shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.uint8)


def load_label_png(path: str | os.PathLike) -> np.ndarray:
    """Decode a label map: palette ('P') or grey ('L') PNG -> [H, W] uint8 indices (no palette
    lookup); 16-bit grey -> [H, W] int32; RGB (e.g. COCO panoptic ids) -> [H, W, 3] uint8.
    """
    im = _open(path, "label file")
    if im.mode in ("P", "L"):
        return np.array(im, dtype=np.uint8)
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        return np.array(im, dtype=np.int32)
    if im.mode == "RGB":
        return np.array(im, dtype=np.uint8)
    if im.mode in ("RGBA",):
        return np.array(im.convert("RGB"), dtype=np.uint8)
    if im.mode == "LA":
        return np.array(im.convert("L"), dtype=np.uint8)
    raise KnetError(f"label file {path} has unsupported PNG mode {im.mode}")


def save_png(path: str | os.PathLike, array: np.ndarray, *, overwrite: bool, palette: np.ndarray | None = None) -> Path:
    """Write a [H, W] (uint8 / uint16) or [H, W, 3|4] uint8 array as PNG, atomically.

    `palette` ([K, 3] uint8) turns a [H, W] uint8 array into a palette PNG.
    """
    arr = np.asarray(array)
    if arr.ndim == 2:
        fits_8bit = arr.dtype == np.uint8 or arr.size == 0 or (
            arr.dtype.kind in "iub" and arr.min() >= 0 and arr.max() <= 255
        )
        if fits_8bit:
            im = Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8), mode="L")
            if palette is not None:
                pal = np.zeros((256, 3), dtype=np.uint8)
                pal[: min(len(palette), 256)] = np.asarray(palette, dtype=np.uint8)[:256]
                im = Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8), mode="L")
                im.putpalette(pal.reshape(-1).tolist())  # L -> P keeping the indices
        elif arr.dtype.kind in "iu" and arr.min() >= 0 and arr.max() < 65536:
            im = Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint16))
        else:
            raise KnetError(f"cannot write {path}: label values outside 0..65535")
    elif arr.ndim == 3 and arr.shape[2] in (3, 4):
        im = Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8), mode="RGB" if arr.shape[2] == 3 else "RGBA")
    else:
        raise KnetError(f"cannot write {path}: array of shape {arr.shape} is not an image")
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue(), overwrite=overwrite)


def save_jpeg(path: str | os.PathLike, image: np.ndarray, *, overwrite: bool, quality: int = 95) -> Path:
    """Write a [H, W, 3] uint8 RGB array as JPEG, atomically."""
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise KnetError(f"cannot write {path}: array of shape {arr.shape} is not an RGB image")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8), mode="RGB").save(buf, format="JPEG", quality=quality)
    return atomic_write_bytes(path, buf.getvalue(), overwrite=overwrite)
