import io

import numpy as np
import pytest
from PIL import Image

from stylesearch.data.images import decode_image
from stylesearch.errors import CatalogError


def encode(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt)
    return buf.getvalue()


def test_transparent_png_becomes_white_background():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    rgba.putpixel((0, 0), (0, 0, 255, 255))
    out = decode_image(encode(rgba, "PNG"))
    assert out.mode == "RGB" and out.getpixel((1, 1)) == (255, 255, 255) and out.getpixel((0, 0)) == (0, 0, 255)


def test_cmyk_and_16_bit_greyscale_convert_without_clipping():
    assert decode_image(encode(Image.new("CMYK", (4, 4), (0, 255, 255, 0)), "JPEG")).mode == "RGB"
    grey16 = Image.fromarray(np.full((4, 4), 32768, dtype=np.uint16))
    out = decode_image(encode(grey16, "PNG"))
    assert out.mode == "RGB" and 120 <= out.getpixel((0, 0))[0] <= 135  # mid-grey, not white


def test_text_file_and_truncated_jpeg_are_refused_with_where():
    with pytest.raises(CatalogError, match="id 7: not an image"):
        decode_image(b"hello, I am a csv", where="id 7")
    data = encode(Image.new("RGB", (64, 64), "red"), "JPEG")
    with pytest.raises(CatalogError, match="corrupt or truncated"):
        decode_image(data[: len(data) // 3])


def test_decompression_bomb_is_refused():
    big = encode(Image.new("1", (8000, 8000)), "PNG")  # 64 Mpx, compresses to a few KB
    with pytest.raises(CatalogError, match="decompression bomb"):
        decode_image(big, max_pixels=40_000_000)
