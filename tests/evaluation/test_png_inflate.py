"""knet's own streaming inflate (csrc/ops/png/inflate_core) against zlib, and the fused PNG ->
PQ statistics path (pq_image_stats_files) against PIL-decoded id maps, on every kind of stream
and PNG we can make, plus corrupt and truncated inputs."""

from __future__ import annotations

import random
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from knet.errors import KnetError
from knet.evaluation.native import native
from knet.evaluation.panoptic import PanopticAccumulator, evaluate_panoptic
from knet.evaluation.synthetic_panoptic import write_panoptic_set

STRATEGIES = (zlib.Z_DEFAULT_STRATEGY, zlib.Z_FILTERED, zlib.Z_HUFFMAN_ONLY, zlib.Z_RLE, zlib.Z_FIXED)


def _payloads():
    rng = random.Random(1)
    nrng = np.random.default_rng(1)
    pixel = bytes([7, 200, 3])
    yield b""
    yield b"x"
    yield bytes(70000)  # long distance-1 runs
    yield nrng.integers(0, 256, 50000, dtype=np.uint8).tobytes()  # incompressible: stored blocks
    yield nrng.integers(0, 4, 80000, dtype=np.uint8).tobytes()  # literal-heavy, small alphabet
    yield b"".join(bytes([rng.randrange(256)]) * rng.randrange(1, 400) for _ in range(600))
    yield b"".join(pixel if rng.random() < 0.95 else bytes(rng.randrange(256) for _ in range(3)) for _ in range(40000))  # distance 3
    yield b"".join(bytes([1, 2, 3, 4, 5][: rng.randrange(2, 6)]) * rng.randrange(1, 90) for _ in range(900))  # distances 2..5
    yield (b"the quick brown fox jumps over the lazy dog " * 3000)[:100003]
    rows = []  # a PNG-like scanline stream: filter byte + rows, most of them Up with zero deltas
    for y in range(300):
        rows.append(b"\x02" + bytes(1500) if y % 7 else b"\x01" + nrng.integers(0, 3, 1500, dtype=np.uint8).tobytes())
    yield b"".join(rows)


@pytest.mark.parametrize("level", range(10))
def test_inflate_matches_zlib(level):
    inflate = native().zlib_inflate
    for data in _payloads():
        for strategy in STRATEGIES:
            for wbits in (15, 9, 12):
                c = zlib.compressobj(level, zlib.DEFLATED, wbits, 9 if level else 8, strategy)
                z = c.compress(data) + c.flush()
                assert inflate(z) == data, (len(data), level, strategy, wbits)


def test_inflate_flushes_and_stored_blocks():
    rng = np.random.default_rng(2)
    data = rng.integers(0, 256, 20000, dtype=np.uint8).tobytes() + bytes(90000) + b"abc" * 5000
    c = zlib.compressobj(6)
    parts = [c.compress(data[:7000]), c.flush(zlib.Z_SYNC_FLUSH), c.compress(data[7000:50000]), c.flush(zlib.Z_FULL_FLUSH),
             c.compress(data[50000:]), c.flush(zlib.Z_SYNC_FLUSH), c.flush()]
    z = b"".join(parts)
    assert native().zlib_inflate(z) == data
    c = zlib.compressobj(0)  # level 0: stored blocks only, up to 64 KiB each
    assert native().zlib_inflate(c.compress(data) + c.flush()) == data
    # a stream that ends with an empty stored final block, and trailing bytes after the stream
    c = zlib.compressobj(9)
    z = c.compress(data) + c.flush(zlib.Z_FULL_FLUSH) + c.flush()
    assert native().zlib_inflate(z + b"junk") == data


def test_inflate_rejects_what_zlib_rejects():
    rng = random.Random(3)
    inflate = native().zlib_inflate
    rejected = 0
    for _ in range(1500):
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 600))) + bytes(rng.randrange(4000))
        z = bytearray(zlib.compress(body, rng.randrange(10)))
        mode = rng.randrange(3)
        if mode == 0:
            z = z[: rng.randrange(len(z))]
        elif mode == 1:
            z[rng.randrange(len(z))] ^= 1 << rng.randrange(8)
        else:
            z[rng.randrange(2, len(z))] = rng.randrange(256)
        try:
            ref = zlib.decompress(bytes(z))
        except zlib.error:
            rejected += 1
            with pytest.raises(ValueError):
                inflate(bytes(z))
            continue
        assert inflate(bytes(z)) == ref
    assert rejected > 1000
    for bad in (b"", b"\x78", b"\x78\x9d", b"\x79\x9c\x03\x00", b"\x78\xbb" + zlib.compress(b"a")[2:]):
        with pytest.raises(ValueError):
            inflate(bad)
    z = bytearray(zlib.compress(b"hello" * 100))
    z[-1] ^= 1  # adler32 trailer
    with pytest.raises(ValueError, match="adler32"):
        inflate(bytes(z))


def _ids_of(path):
    arr = np.array(Image.open(path), dtype=np.uint32)
    return arr[..., 0] + 256 * arr[..., 1] + 65536 * arr[..., 2]


def _segments(ids, rng, crowd):
    segs = []
    for k, i in enumerate(np.unique(ids).tolist()):
        if i:
            segs.append({"id": i, "category_id": 1 + k % 3, "area": int((ids == i).sum()), "iscrowd": int(crowd and rng.random() < 0.2)})
    return segs


def _id_map(rng, h, w, noise):
    blocks = rng.integers(0, 6, (h // 5 + 1, w // 7 + 1))
    lab = np.kron(blocks, np.ones((5, 7), np.int64))[:h, :w]
    lab[rng.random((h, w)) < noise] = 0
    return lab * 4099 % (1 << 24)  # ids with all three bytes in use


def _check_pair(tmp_path, g_path, p_path, rng):
    gi, pi = _ids_of(g_path), _ids_of(p_path)
    gs, ps = _segments(gi, rng, True), _segments(pi, rng, False)
    acc = PanopticAccumulator([{"id": c, "isthing": c % 2} for c in (1, 2, 3)], chunks=1)
    acc.add_image(gi, gs, pi, ps)
    acc.add_stats(acc.image_stats_files(g_path.read_bytes(), gs, p_path.read_bytes(), ps))
    a, b = acc._images
    assert (a.match_cat, a.match_iou, a.fn_cat, a.fp_cat) == (b.match_cat, b.match_iou, b.fn_cat, b.fp_cat)
    return a


@pytest.mark.parametrize("shape", [(1, 1), (1, 13), (9, 1), (3, 5), (33, 47), (120, 161)])
@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_pil_pngs_every_level(tmp_path, shape, mode):
    rng = np.random.default_rng(shape[0] * 1000 + shape[1] + len(mode))
    h, w = shape
    for level in (0, 1, 6, 9):
        for name, noise in (("g.png", 0.05), ("p.png", 0.2)):
            ids = _id_map(rng, h, w, noise)
            arr = np.stack([ids & 255, (ids >> 8) & 255, ids >> 16] + ([rng.integers(0, 256, (h, w))] if mode == "RGBA" else []), -1)
            Image.fromarray(arr.astype(np.uint8), mode).save(tmp_path / name, compress_level=level)
        _check_pair(tmp_path, tmp_path / "g.png", tmp_path / "p.png", rng)


def test_repo_writers_and_several_idat_chunks(tmp_path):
    from knet.data.io import save_png

    rng = np.random.default_rng(5)
    for k, (h, w) in enumerate([(64, 80), (17, 3), (200, 129)]):
        paths = []
        for name in ("g", "p"):
            ids = _id_map(rng, h, w, 0.02)
            paths.append(save_png(tmp_path / f"{name}{k}.png", np.stack([ids & 255, (ids >> 8) & 255, ids >> 16], -1).astype(np.uint8), overwrite=True))
        _check_pair(tmp_path, *paths, rng)
        # the same image with its IDAT data split over many chunks
        data = paths[0].read_bytes()
        split = _split_idat(data, 7)
        assert split != data
        paths[0].write_bytes(split)
        _check_pair(tmp_path, *paths, rng)


def _split_idat(png: bytes, size: int) -> bytes:
    out, pos, idat = [png[:8]], 8, b""
    while pos < len(png):
        length, ctype = struct.unpack(">I4s", png[pos : pos + 8])
        body = png[pos + 8 : pos + 8 + length]
        if ctype == b"IDAT":
            idat += body
        else:
            if ctype == b"IEND":
                for i in range(0, len(idat), size):
                    piece = idat[i : i + size]
                    out.append(struct.pack(">I4s", len(piece), b"IDAT") + piece + struct.pack(">I", zlib.crc32(b"IDAT" + piece)))
            out.append(png[pos : pos + 12 + length])
        pos += 12 + length
    return b"".join(out)


@pytest.fixture(scope="module")
def pan_set(tmp_path_factory):
    return write_panoptic_set(tmp_path_factory.mktemp("pan"), num_images=4, seed=3)


def _copy_set(pan_set, tmp_path):
    import shutil

    shutil.copytree(pan_set["pred_dir"], tmp_path / "pred")
    return tmp_path / "pred"


@pytest.mark.parametrize("damage", ["truncate", "flip", "no_idat", "not_png"])
def test_corrupt_png_names_the_file(pan_set, tmp_path, damage):
    pred_dir = _copy_set(pan_set, tmp_path)
    victim = sorted(pred_dir.glob("*.png"))[1]
    data = bytearray(victim.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[len(data) // 2] ^= 0x10  # inside the IDAT data
    elif damage == "no_idat":
        data = data[:33] + data[-12:]  # signature + IHDR + IEND
    else:
        data = b"GIF89a" + data[6:]
    victim.write_bytes(bytes(data))
    with pytest.raises(KnetError, match=victim.name) as exc:
        evaluate_panoptic(pan_set["gt_json"], pan_set["gt_dir"], pan_set["pred_json"], pred_dir)
    assert "\n" not in str(exc.value)


def test_corrupt_png_cli_one_line(pan_set, tmp_path):
    from typer.testing import CliRunner

    from knet.cli.main import app

    pred_dir = _copy_set(pan_set, tmp_path)
    victim = sorted(pred_dir.glob("*.png"))[0]
    victim.write_bytes(victim.read_bytes()[:-40])
    r = CliRunner().invoke(app, ["eval", "panoptic", "--gt-json", str(pan_set["gt_json"]), "--gt-dir", str(pan_set["gt_dir"]),
                                 "--pred-json", str(pan_set["pred_json"]), "--pred-dir", str(pred_dir)])
    assert r.exit_code == 2 and "knet: error:" in r.output and victim.name in r.output and "Traceback" not in r.output


def test_size_mismatch_and_missing_file(pan_set, tmp_path):
    pred_dir = _copy_set(pan_set, tmp_path)
    victim = sorted(pred_dir.glob("*.png"))[2]
    Image.fromarray(np.zeros((7, 9, 3), np.uint8)).save(victim)
    with pytest.raises(KnetError, match="prediction is 9x7"):
        evaluate_panoptic(pan_set["gt_json"], pan_set["gt_dir"], pan_set["pred_json"], pred_dir)
    victim.unlink()
    with pytest.raises(KnetError, match="PNG not found"):
        evaluate_panoptic(pan_set["gt_json"], pan_set["gt_dir"], pan_set["pred_json"], pred_dir)


def test_other_png_flavours_go_through_pil(pan_set, tmp_path):
    # a palette PNG with the same pixels: decoded by PIL (and rejected as not RGB), never by the fused path
    pred_dir = _copy_set(pan_set, tmp_path)
    victim = sorted(pred_dir.glob("*.png"))[0]
    Image.open(victim).convert("RGB").quantize(colors=256).save(victim)
    with pytest.raises(KnetError, match="not an RGB panoptic PNG"):
        evaluate_panoptic(pan_set["gt_json"], pan_set["gt_dir"], pan_set["pred_json"], pred_dir)
    acc = PanopticAccumulator([{"id": 1}])
    assert acc.image_stats_files(victim.read_bytes(), [], victim.read_bytes(), []) is None


def test_panoptic_json_either_parser(pan_set, tmp_path, monkeypatch):
    # small JSONs go through the standard library, large ones through orjson: same results, same errors
    import knet.evaluation.panoptic as pan

    a = evaluate_panoptic(pan_set["gt_json"], pan_set["gt_dir"], pan_set["pred_json"], pan_set["pred_dir"])
    (tmp_path / "bad.json").write_text('{"annotations": [')
    with pytest.raises(KnetError, match="bad.json is not valid JSON"):
        evaluate_panoptic(pan_set["gt_json"], pan_set["gt_dir"], tmp_path / "bad.json", pan_set["pred_dir"])
    monkeypatch.setattr(pan, "_ORJSON_FROM_BYTES", 0)
    b = evaluate_panoptic(pan_set["gt_json"], pan_set["gt_dir"], pan_set["pred_json"], pan_set["pred_dir"])
    assert a == b and a.groups["All"]["n"] > 0
    with pytest.raises(KnetError, match="bad.json is not valid JSON"):
        evaluate_panoptic(pan_set["gt_json"], pan_set["gt_dir"], tmp_path / "bad.json", pan_set["pred_dir"])
    with pytest.raises(KnetError, match="not found"):
        evaluate_panoptic(pan_set["gt_json"], pan_set["gt_dir"], tmp_path / "missing.json", pan_set["pred_dir"])
