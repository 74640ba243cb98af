"""Decode product images safely: bombs refused, corrupt bodies refused, odd modes (CMYK, 16-bit, alpha,
palette) made RGB.

PIL decodes a JPEG whose header is sound but whose compressed body is garbage into noise, silently:
libjpeg's "Corrupt JPEG data" is only a warning, which PIL does not pass on. So every JPEG is also run
through libjpeg-turbo (`simplejpeg`) with its warnings made errors, at 1/8 scale: the Huffman decoding,
where corruption shows, is complete, and the inverse DCT, most of the cost, is skipped.
"""

from __future__ import annotations

import io
import warnings

import simplejpeg
from PIL import Image, UnidentifiedImageError

from stylesearch.errors import CatalogError

# About 40 megapixels: far above any product photo, far below what would exhaust memory.
MAX_PIXELS = 40_000_000


def decode_image(data: bytes, *, where: str = "image", max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode image bytes to an RGB PIL image, or raise CatalogError naming `where` and the reason."""
    if not data:
        raise CatalogError(f"{where}: empty image data")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise CatalogError(f"{where}: {width}x{height} pixels is over the {max_pixels} limit "
                                   "(a decompression bomb?)")
            image.load()
    except CatalogError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise CatalogError(f"{where}: refused as a decompression bomb ({err})") from err
    except UnidentifiedImageError as err:
        raise CatalogError(f"{where}: not an image file") from err
    except (OSError, SyntaxError, ValueError) as err:
        raise CatalogError(f"{where}: corrupt or truncated image ({err})") from err
    if data[:2] == b"\xff\xd8":
        check_jpeg_body(data, where=where)
    return to_rgb(image)


def check_jpeg_body(data: bytes, *, where: str = "image") -> None:
    """Raise CatalogError when libjpeg finds the compressed data of a JPEG corrupt (PIL hides that)."""
    try:
        colorspace = simplejpeg.decode_jpeg_header(data)[2]
        out = {"Gray": "GRAY", "CMYK": "CMYK", "YCCK": "CMYK"}.get(colorspace, "RGB")
        simplejpeg.decode_jpeg(data, colorspace=out, strict=True, min_factor=8)
    except ValueError as err:
        message = str(err)
        if "corrupt" in message.lower() or "premature" in message.lower() or "bogus" in message.lower():
            raise CatalogError(f"{where}: corrupt JPEG data ({message})") from err
        # Anything else is a format libjpeg-turbo declines but PIL read: PIL's decoding stands.


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB; transparent pixels become white, as on a product page."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: scale to 8 bits instead of clipping everything above 255 to white.
        return image.point(lambda v: v / 256).convert("L").convert("RGB")
    return image.convert("RGB")
