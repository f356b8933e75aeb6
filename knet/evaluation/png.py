"""Fast PNG reading for the evaluators: panoptic id maps and label maps.

The common case (8-bit, non-interlaced; RGB/RGBA for panoptic ids, grey/palette for labels)
is decoded here: chunk walk in Python, inflate with ISA-L's zlib-compatible inflate (the
`isal` package, about 1.7x faster than zlib here; it releases the GIL), scanline
unfiltering and the id conversion in C++ (csrc/ops/png, also without the GIL), so a thread
pool decodes images in parallel. Every other PNG flavour (16-bit, interlaced, ...) is decoded
by PIL; the choice is made from the header, never by catching a failure.

(`knet eval panoptic` does not come through here: it hands the files' bytes to one fused C++
call, see knet/evaluation/panoptic.py; these readers serve the callers that want id maps.)
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
from isal import isal_zlib

from knet.errors import KnetError
from knet.evaluation.native import native as ext

_SIG = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def _parse(path: Path, data: bytes):
    if not data.startswith(_SIG):
        raise KnetError(f"{path} is not a PNG file")
    pos, n = 8, len(data)
    hdr = None
    idat = []
    while pos + 8 <= n:
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if len(body) != length:
            raise KnetError(f"{path} is a truncated PNG")
        if ctype == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif ctype == b"IDAT":
            idat.append(body)
        elif ctype == b"IEND":
            break
        pos += 12 + length
    if hdr is None or not idat:
        raise KnetError(f"{path} is a corrupt PNG (no IHDR or IDAT)")
    w, h, depth, color, _, _, interlace = hdr
    return h, w, depth, color, interlace, b"".join(idat) if len(idat) > 1 else idat[0]


def _fast(depth: int, color: int, interlace: int, wanted: tuple[int, ...]) -> bool:
    return depth == 8 and interlace == 0 and color in wanted


def _inflate(path: Path, idat: bytes, size: int) -> bytes:
    try:
        return isal_zlib.decompress(idat, bufsize=size)
    except isal_zlib.error as exc:
        raise KnetError(f"{path} is a corrupt PNG ({exc})") from None


def _pil(path: Path) -> np.ndarray:
    from PIL import Image  # only for the PNG flavours decoded by PIL

    try:
        with Image.open(path) as im:
            return np.array(im)
    except (OSError, ValueError) as exc:
        raise KnetError(f"cannot decode {path} ({exc})") from None


def _read(path: str | os.PathLike) -> tuple[Path, bytes]:
    path = Path(path)
    if not path.is_file():
        raise KnetError(f"PNG not found: {path}")
    return path, path.read_bytes()


def read_panoptic_ids(path: str | os.PathLike) -> np.ndarray:
    """[H, W] uint32 ids R + 256 G + 256^2 B of a panoptic PNG (panopticapi's rgb2id)."""
    path, data = _read(path)
    h, w, depth, color, interlace, idat = _parse(path, data)
    if _fast(depth, color, interlace, (2, 6)):
        ch = _CHANNELS[color]
        raw = _inflate(path, idat, h * (w * ch + 1))
        try:
            return ext().png_unfilter_ids(raw, h, w, ch)
        except ValueError as exc:
            raise KnetError(f"{path}: {exc}") from None
    arr = _pil(path)
    if arr.ndim != 3 or arr.shape[2] < 3:
        raise KnetError(f"{path} is not an RGB panoptic PNG")
    arr = arr.astype(np.uint32)
    return arr[:, :, 0] + 256 * arr[:, :, 1] + 256 * 256 * arr[:, :, 2]


def read_label_map(path: str | os.PathLike) -> np.ndarray:
    """[H, W] label map of a grey or palette PNG (palette indices, as PIL gives them)."""
    path, data = _read(path)
    h, w, depth, color, interlace, idat = _parse(path, data)
    if _fast(depth, color, interlace, (0, 3)):
        raw = _inflate(path, idat, h * (w + 1))
        try:
            return ext().png_unfilter(raw, h, w, 1)
        except ValueError as exc:
            raise KnetError(f"{path}: {exc}") from None
    arr = _pil(path)
    if arr.ndim != 2:
        raise KnetError(f"{path} is not a single-channel label PNG")
    return arr
