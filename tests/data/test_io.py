"""knet.data.io: decoding every kind of image file, one-line errors naming the path, atomic PNGs."""

import numpy as np
import pytest
from PIL import Image

from knet.data.io import load_image, load_label_png, save_jpeg, save_png
from knet.errors import KnetError


def _rgb(h=5, w=7, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_rgb_png_roundtrip(tmp_path):
    a = _rgb()
    save_png(tmp_path / "a.png", a, overwrite=False)
    out = load_image(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (5, 7, 3) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, a)


def test_grey_rgba_16bit_palette(tmp_path):
    g = np.arange(35, dtype=np.uint8).reshape(5, 7)
    Image.fromarray(g, mode="L").save(tmp_path / "g.png")
    np.testing.assert_array_equal(load_image(tmp_path / "g.png"), np.repeat(g[..., None], 3, 2))
    rgba = np.concatenate([_rgb(), np.full((5, 7, 1), 255, np.uint8)], 2)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    np.testing.assert_array_equal(load_image(tmp_path / "a.png"), rgba[..., :3])
    transparent = rgba.copy()
    transparent[..., 3] = 0
    Image.fromarray(transparent, mode="RGBA").save(tmp_path / "t.png")
    assert (load_image(tmp_path / "t.png") == 255).all()  # composited on white
    w16 = (np.arange(35).reshape(5, 7) * 1000).astype(np.uint16)
    Image.fromarray(w16).save(tmp_path / "w.png")
    out = load_image(tmp_path / "w.png")
    np.testing.assert_array_equal(out[..., 0], np.clip(np.rint(w16 / 257.0), 0, 255).astype(np.uint8))
    p = Image.fromarray(g % 4, mode="L").convert("P")
    p.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9] + [0] * 756)
    p.save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png").shape == (5, 7, 3)
    np.testing.assert_array_equal(load_label_png(tmp_path / "p.png"), g % 4)  # indices, not colours


def test_exif_orientation(tmp_path):
    a = _rgb(4, 6)
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 CW on display
    im.save(tmp_path / "r.jpg", exif=exif, quality=100)
    out = load_image(tmp_path / "r.jpg")
    assert out.shape == (6, 4, 3)


@pytest.mark.parametrize("content", [b"", b"not an image at all", None])
def test_bad_files_name_the_path(tmp_path, content):
    p = tmp_path / "bad.jpg"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(KnetError) as e:
        load_image(p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_truncated_and_directory(tmp_path):
    Image.fromarray(_rgb(64, 64)).save(tmp_path / "ok.jpg")
    data = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(KnetError, match="cut.jpg"):
        load_image(tmp_path / "cut.jpg")
    with pytest.raises(KnetError, match="directory"):
        load_image(tmp_path)
    with pytest.raises(KnetError, match="missing.png"):
        load_label_png(tmp_path / "missing.png")


def test_save_png_modes_and_no_clobber(tmp_path):
    lab = np.random.default_rng(1).integers(0, 150, (9, 11)).astype(np.int64)
    save_png(tmp_path / "l.png", lab, overwrite=False, palette=np.zeros((150, 3), np.uint8))
    assert Image.open(tmp_path / "l.png").mode == "P"
    np.testing.assert_array_equal(load_label_png(tmp_path / "l.png"), lab)
    big = np.array([[0, 300], [65535, 7]])
    save_png(tmp_path / "b.png", big, overwrite=False)
    np.testing.assert_array_equal(load_label_png(tmp_path / "b.png"), big)
    with pytest.raises(KnetError, match="exists"):
        save_png(tmp_path / "l.png", lab, overwrite=False)
    save_png(tmp_path / "l.png", lab * 0, overwrite=True)
    assert load_label_png(tmp_path / "l.png").max() == 0
    with pytest.raises(KnetError):
        save_png(tmp_path / "x.png", np.zeros((2, 2, 2)), overwrite=False)
    save_jpeg(tmp_path / "j.jpg", _rgb(), overwrite=False)
    assert load_image(tmp_path / "j.jpg").shape == (5, 7, 3)
