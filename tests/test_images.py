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


# XYZ -> linear sRGB: a test camera whose sensor records linear sRGB, so that LibRaw's development gives the photo back
XYZ_TO_LINEAR_SRGB = ((3.2406, -1.5372, -0.4986), (-0.9689, 1.8758, 0.0415), (0.0557, -0.2040, 1.0570))


def write_dng(pixels: np.ndarray, path, orientation: int = 1) -> None:
    """An RGB photo as a camera's sensor records it (RGGB mosaic of linear light, 12 bits), as a DNG file (written by
    PiDNG, a test dependency), with an orientation tag to view it by."""
    from pidng.core import RAW2DNG, DNGTags, Tag
    from pidng.defs import CalibrationIlluminant, CFAPattern, DNGVersion, PhotometricInterpretation

    linear = (np.asarray(pixels, np.float64) / 255) ** 2.2
    h, w = linear.shape[:2]
    mosaic = np.empty((h, w), np.uint16)
    for dy, dx, channel in ((0, 0, 0), (0, 1, 1), (1, 0, 1), (1, 1, 2)):
        mosaic[dy::2, dx::2] = np.round(linear[dy::2, dx::2, channel] * 4095)
    tags = DNGTags()
    for tag, value in (
        (Tag.ImageWidth, w),
        (Tag.ImageLength, h),
        (Tag.TileWidth, w),
        (Tag.TileLength, h),
        (Tag.Orientation, orientation),
        (Tag.PhotometricInterpretation, PhotometricInterpretation.Color_Filter_Array),
        (Tag.SamplesPerPixel, 1),
        (Tag.BitsPerSample, 16),
        (Tag.CFARepeatPatternDim, [2, 2]),
        (Tag.CFAPattern, CFAPattern.RGGB),
        (Tag.BlackLevel, 0),
        (Tag.WhiteLevel, 4095),
        (Tag.ColorMatrix1, [[round(v * 10000), 10000] for row in XYZ_TO_LINEAR_SRGB for v in row]),
        (Tag.CalibrationIlluminant1, CalibrationIlluminant.D65),
        (Tag.AsShotNeutral, [[1, 1], [1, 1], [1, 1]]),
        (Tag.Make, "facekit"),
        (Tag.Model, "test camera"),
        (Tag.DNGVersion, DNGVersion.V1_4),
    ):
        tags.set(tag, value)
    writer = RAW2DNG()
    writer.options(tags, path="", compress=False)
    writer.convert(mosaic, filename=str(path.with_suffix("")))  # PiDNG adds ".dng"


def test_camera_raw_photos_are_developed_upright(tmp_path, face_jpg, dlib_embedder):
    """A camera's RAW file (here a DNG, stored turned with an orientation to view it by) is developed by LibRaw: the
    photo upright, in colour, and its face embeds as the JPEG's does (Pillow cannot identify the file)."""
    jpeg = load_image(face_jpg).pixels
    raw = tmp_path / "IMG_0001.dng"
    write_dng(np.rot90(jpeg), raw, orientation=6)  # "rotate 90° clockwise to view"
    developed = load_image(raw).pixels
    assert developed.shape == (250, 250, 3)
    difference = np.abs(developed.astype(int) - jpeg.astype(int)).mean(axis=(0, 1))
    assert (difference < 16).all(), difference  # each colour channel: LibRaw's tone curve is not the JPEG's
    assert np.abs(developed.astype(int) - np.rot90(jpeg).astype(int)).mean() > 2 * difference.mean()  # turned once
    (face,) = dlib_embedder.detect_and_embed(developed)
    assert face.embedding @ dlib_embedder.detect_and_embed(jpeg)[0].embedding > 0.97


def test_bad_raw_files_are_reported(tmp_path, face_jpg):
    dng = tmp_path / "whole.dng"
    write_dng(load_image(face_jpg).pixels, dng)
    (tmp_path / "cut.dng").write_bytes(dng.read_bytes()[:3000])
    (tmp_path / "renamed.nef").write_bytes(face_jpg.read_bytes())  # a JPEG
    with pytest.raises(ImageError, match="corrupt or truncated RAW file"):
        load_image(tmp_path / "cut.dng")
    with pytest.raises(ImageError, match="not an image: a RAW suffix, but LibRaw cannot read the file"):
        load_image(tmp_path / "renamed.nef")
    with pytest.raises(ImageError, match="image too large: 250x250"):
        load_image(dng, max_pixels=10_000)


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
