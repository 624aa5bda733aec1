import os
import shutil

import numpy as np
import pytest
from PIL import Image

from facekit.errors import ImageError
from facekit.images import iter_image_files, load_image, sha256_file

from .conftest import make_bad_inputs


@pytest.fixture
def face_jpg(lfw):
    return lfw / "Arnold_Schwarzenegger" / "Arnold_Schwarzenegger_0001.jpg"


def test_rgb_and_hash(face_jpg):
    img = load_image(face_jpg)
    assert img.pixels.shape == (250, 250, 3) and img.pixels.dtype == np.uint8
    assert img.sha256 == sha256_file(face_jpg)


def test_exif_orientation_is_applied(tmp_path, face_jpg):
    upright = Image.open(face_jpg)
    stored = upright.rotate(90, expand=True).crop((0, 0, 250, 200))  # not square: orientation shows in the shape
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    path = tmp_path / "rotated.jpg"
    stored.save(path, exif=exif)
    assert load_image(path).pixels.shape == (250, 200, 3)  # (H, W) swapped back


def test_heic_photos_are_read_upright_as_jpegs_are(tmp_path, face_jpg):
    """An iPhone's photo is HEIC, stored turned with an orientation to view it by: read through pi-heif, turned once,
    the same pixels as the JPEG of it (the HEIC written by pillow-heif's encoder, a test dependency)."""
    import pillow_heif

    stored = Image.open(face_jpg).convert("RGB").rotate(90, expand=True).crop((0, 0, 250, 200))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    heic, jpeg = tmp_path / "IMG_0001.HEIC", tmp_path / "rotated.jpg"
    pillow_heif.from_pillow(stored).save(heic, quality=95, exif=exif.tobytes())
    stored.save(jpeg, quality=95, exif=exif)
    from_heic, from_jpeg = load_image(heic).pixels, load_image(jpeg).pixels
    assert from_heic.shape == from_jpeg.shape == (250, 200, 3)
    assert np.abs(from_heic.astype(int) - from_jpeg.astype(int)).mean() < 4


@pytest.mark.parametrize("mode", ["L", "CMYK", "RGBA", "LA", "P", "I;16"])
def test_pixel_formats_become_rgb(tmp_path, face_jpg, mode):
    src = Image.open(face_jpg)
    if mode == "I;16":
        arr = (np.asarray(src.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
        img = Image.fromarray(arr)  # uint16 → mode I;16
        suffix = ".png"
    else:
        img = src.convert(mode)
        suffix = ".tif" if mode == "CMYK" else ".png"
    path = tmp_path / f"face_{mode.replace(';', '')}{suffix}"
    img.save(path)
    pixels = load_image(path).pixels
    assert pixels.shape == (250, 250, 3) and pixels.dtype == np.uint8
    assert 20 < pixels.mean() < 235  # not blank, not saturated (16-bit is scaled, not clipped)


def test_transparent_pixels_become_white(tmp_path):
    img = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    img.save(tmp_path / "clear.png")
    assert load_image(tmp_path / "clear.png").pixels.min() == 255


def test_every_bad_kind_has_a_reason(tmp_path, face_jpg):
    expected = make_bad_inputs(tmp_path / "bad", face_jpg)
    for name, reason in expected.items():
        if name == "noface.png":
            load_image(tmp_path / "bad" / name)  # a valid image: "no face" is found later
            continue
        with pytest.raises(ImageError) as err:
            load_image(tmp_path / "bad" / name, max_pixels=80_000_000)
        assert reason in err.value.reason
    with pytest.raises(ImageError, match="file not found"):
        load_image(tmp_path / "missing.jpg")


def test_above_pillows_own_limit_the_message_is_facekits(tmp_path):
    """Pillow refuses on its own above 179 MP with its message; facekit's limit and advice come first,
    and Pillow's global limit is left as it was."""
    Image.new("1", (20_000, 10_000)).save(tmp_path / "huge.png")  # 200 MP in a few kB
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageError, match=r"20000x10000 = 200000000 pixels.*FACEKIT_MAX_IMAGE_PIXELS"):
        load_image(tmp_path / "huge.png")
    assert before == Image.MAX_IMAGE_PIXELS


def test_iter_image_files_lists_visible_files_sorted(tmp_path):
    (tmp_path / "b").mkdir()
    for name in ["b/2.jpg", "b/1.jpg", ".hidden.jpg", "a.txt"]:
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in iter_image_files([tmp_path])] == ["a.txt", "b"]  # the subfolder is reported
    with pytest.raises(ImageError, match="a folder, not a photo: `facekit index FOLDER --recursive`"):
        load_image(tmp_path / "b")
    assert [p.name for p in iter_image_files([tmp_path], recursive=True)] == ["a.txt", "1.jpg", "2.jpg"]


def test_symlinked_folders_are_followed_once_and_odd_entries_reported(tmp_path, face_jpg):
    photos = tmp_path / "photos"
    (photos / "ann").mkdir(parents=True)
    shutil.copy(face_jpg, photos / "ann" / "1.jpg")
    links = tmp_path / "links"
    links.mkdir()
    (links / "ann").symlink_to(photos / "ann")  # a folder of links to folders, as in the bug report
    (links / "ann-again").symlink_to(photos / "ann")  # the same folder twice: read once
    (links / "loop").symlink_to(links)  # a link loop
    (links / "gone.jpg").symlink_to(tmp_path / "missing.jpg")
    os.mkfifo(links / "pipe")
    found = list(iter_image_files([links], recursive=True))
    assert [p.relative_to(links).as_posix() for p in found] == ["ann/1.jpg", "gone.jpg", "pipe"]
    load_image(found[0])
    with pytest.raises(ImageError, match="dangling symbolic link"):
        load_image(found[1])
    with pytest.raises(ImageError, match="not a regular file"):
        load_image(found[2])  # never opened: opening a pipe would block
