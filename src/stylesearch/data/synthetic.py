"""A small drawn catalogue in the Kaggle layout, so the demo and the tests need no download.

Each product is a simple silhouette for its article type, filled with its colour and pattern, on
the white background of a catalogue photo, with a Kaggle-style name ("Roadster Men Navy Blue
Striped Tshirts"). Colour, type and pattern are visible in the picture and named in the text, so a
model can really learn to match them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from stylesearch.common.files import atomic_write_text

COLOURS: dict[str, tuple[int, int, int]] = {
    "Black": (20, 20, 20),
    "White": (235, 235, 235),
    "Red": (200, 30, 40),
    "Navy Blue": (20, 30, 90),
    "Blue": (40, 90, 210),
    "Green": (40, 150, 60),
    "Yellow": (235, 200, 30),
    "Pink": (240, 130, 170),
    "Grey": (128, 128, 128),
    "Brown": (120, 70, 30),
}
PATTERNS = ("Solid", "Striped", "Checked", "Polka Dot")
BRANDS = ("Roadster", "Puma", "Nike", "Fabindia", "Titan", "Baggit", "Wrangler", "Mango")


@dataclass(frozen=True)
class ArticleType:
    name: str
    master: str
    sub: str
    genders: tuple[str, ...]
    usage: str
    shape: str


ARTICLE_TYPES = (
    ArticleType("Tshirts", "Apparel", "Topwear", ("Men", "Women"), "Casual", "tee"),
    ArticleType("Shirts", "Apparel", "Topwear", ("Men",), "Formal", "tee"),
    ArticleType("Jeans", "Apparel", "Bottomwear", ("Men", "Women"), "Casual", "trousers"),
    ArticleType("Shorts", "Apparel", "Bottomwear", ("Men", "Women"), "Sports", "shorts"),
    ArticleType("Skirts", "Apparel", "Bottomwear", ("Women",), "Casual", "skirt"),
    ArticleType("Dresses", "Apparel", "Dress", ("Women",), "Casual", "dress"),
    ArticleType("Watches", "Accessories", "Watches", ("Men", "Women"), "Casual", "watch"),
    ArticleType("Handbags", "Accessories", "Bags", ("Women",), "Casual", "bag"),
    ArticleType("Casual Shoes", "Footwear", "Shoes", ("Men", "Women"), "Casual", "shoe"),
    ArticleType("Caps", "Accessories", "Headwear", ("Men", "Unisex"), "Casual", "cap"),
)

SEASONS = ("Summer", "Fall", "Winter", "Spring")
W, H = 60, 80  # the size of the shared Kaggle "small" photos


def _outline(shape: str) -> list[tuple[float, float]] | tuple[str, tuple[int, int, int, int]]:
    polygons = {
        "tee": [(10, 18), (22, 12), (38, 12), (50, 18), (56, 30), (46, 34), (44, 68), (16, 68), (14, 34), (4, 30)],
        "trousers": [(16, 8), (44, 8), (48, 74), (34, 74), (30, 30), (26, 74), (12, 74)],
        "shorts": [(14, 20), (46, 20), (50, 56), (33, 56), (30, 36), (27, 56), (10, 56)],
        "skirt": [(20, 16), (40, 16), (52, 64), (8, 64)],
        "dress": [(22, 8), (38, 8), (40, 30), (52, 74), (8, 74), (20, 30)],
        "shoe": [(6, 46), (26, 46), (34, 54), (54, 58), (54, 66), (6, 66)],
        "cap": [(12, 44), (18, 28), (30, 22), (42, 28), (46, 44), (58, 48), (12, 48)],
    }
    if shape == "watch":
        return ("watch", (16, 26, 44, 54))
    if shape == "bag":
        return ("bag", (10, 30, 50, 68))
    return polygons[shape]


def draw_product(shape: str, colour: tuple[int, int, int], pattern: str, rng: random.Random) -> Image.Image:
    """Draw one product photo: a silhouette with a colour and pattern, slightly jittered."""
    img = Image.new("RGB", (W, H), (250, 250, 250))
    mask = Image.new("L", (W, H), 0)
    md = ImageDraw.Draw(mask)
    dx, dy = rng.randint(-3, 3), rng.randint(-3, 3)
    outline = _outline(shape)
    if isinstance(outline, tuple) and outline[0] == "watch":
        x0, y0, x1, y1 = outline[1]
        md.rectangle((26 + dx, 4 + dy, 34 + dx, 76 + dy), fill=255)  # strap
        md.ellipse((x0 + dx, y0 + dy, x1 + dx, y1 + dy), fill=255)
    elif isinstance(outline, tuple) and outline[0] == "bag":
        x0, y0, x1, y1 = outline[1]
        md.arc((18 + dx, 14 + dy, 42 + dx, 42 + dy), 180, 360, fill=255, width=4)
        md.rectangle((x0 + dx, y0 + dy, x1 + dx, y1 + dy), fill=255)
    else:
        md.polygon([(x + dx, y + dy) for x, y in outline], fill=255)
    fill = Image.new("RGB", (W, H), colour)
    fd = ImageDraw.Draw(fill)
    accent = tuple(255 - c for c in colour) if sum(colour) < 380 else (30, 30, 30)
    if pattern == "Striped":
        for y in range(0, H, 8):
            fd.rectangle((0, y, W, y + 2), fill=accent)
    elif pattern == "Checked":
        for x in range(0, W, 10):
            fd.line((x, 0, x, H), fill=accent, width=2)
        for y in range(0, H, 10):
            fd.line((0, y, W, y), fill=accent, width=2)
    elif pattern == "Polka Dot":
        for x in range(3, W, 10):
            for y in range(3, H, 10):
                fd.ellipse((x, y, x + 4, y + 4), fill=accent)
    img.paste(fill, mask=mask)
    if shape == "watch":
        ImageDraw.Draw(img).ellipse((22 + dx, 32 + dy, 38 + dx, 48 + dy), fill=(245, 245, 245))
    return img


def make_catalog(folder: Path, n: int = 600, seed: int = 0) -> Path:
    """Write `n` drawn products as a Kaggle folder (styles.csv + images/<id>.jpg) and return it."""
    rng = random.Random(seed)
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    header = ["id", "gender", "masterCategory", "subCategory", "articleType", "baseColour", "season", "year",
              "usage", "productDisplayName"]
    rows = []
    for i in range(n):
        pid = 10000 + i
        art = ARTICLE_TYPES[i % len(ARTICLE_TYPES)]
        colour = rng.choice(list(COLOURS))
        pattern = rng.choice(PATTERNS) if art.master == "Apparel" else "Solid"
        gender = rng.choice(art.genders)
        brand = rng.choice(BRANDS)
        words = [brand, gender, colour] + ([pattern] if pattern != "Solid" else []) + [art.name]
        image = draw_product(art.shape, COLOURS[colour], pattern, rng)
        image.save(folder / "images" / f"{pid}.jpg", quality=90)
        rows.append([pid, gender, art.master, art.sub, art.name, colour, rng.choice(SEASONS),
                     rng.choice((2011, 2012, 2015, 2017)), art.usage, " ".join(words)])
    lines = [",".join(header)]
    for row in rows:
        # Kaggle's own file leaves commas unquoted; keep that, the loader repairs it.
        lines.append(",".join(str(v) for v in row))
    atomic_write_text(folder / "styles.csv", "\n".join(lines) + "\n")
    return folder


__all__ = ["ARTICLE_TYPES", "COLOURS", "PATTERNS", "draw_product", "make_catalog"]
