"""What colour the photo's own pixels are: a histogram of the product's pixels and a classifier over it.

A small CLIP trained on titles at 64 pixels reads a product's type far better than its colour
(flipped types were found at R-precision 0.83-0.88, flipped colours at 0.29-0.42). Colour is the one
attribute the raw pixels state directly: on a catalogue's plain white backdrop, the product's pixels
are those that are not near-white. Each photo becomes a hue x saturation x brightness histogram of
its product pixels, plus the share of backdrop (a white product hides in it); a multinomial logistic
regression fitted on the train split turns that into a log-probability per value, which `curate.tag`
adds to a column's scores with a weight fitted on val.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from stylesearch.data.images import decode_image

SIDE = 32  # thumbnail side: colour needs no detail, and 32x32 decodes 34k photos in seconds
HUES, SATURATIONS, BRIGHTNESSES = 12, 2, 3  # chromatic bins: 72, fine enough for navy vs blue vs teal
GREYS = 6  # achromatic bins by brightness: black, charcoal, grey, silver, off-white, white
GREY_BELOW = 0.2  # saturation under which a pixel is a grey: its hue is noise
BACKDROP_VALUE, BACKDROP_SATURATION = 0.92, 0.08  # near-white pixels count as the studio backdrop
FEATURES = HUES * SATURATIONS * BRIGHTNESSES + GREYS + 1  # + the backdrop share
L2 = 1e-3  # the classifier's weight penalty: 27k photos and ~3.6k weights per value do not need more
MAX_ITERATIONS = 200  # L-BFGS converges in well under this on the shared catalogue


def colour_histogram(image: Image.Image) -> np.ndarray:
    """(FEATURES,) square-rooted share of the product's pixels in each colour bin, then the backdrop share.

    >>> white = Image.new("RGB", (8, 8), "white")
    >>> float(colour_histogram(white)[-1])
    1.0
    """
    hsv = np.asarray(image.convert("RGB").resize((SIDE, SIDE), Image.Resampling.BILINEAR).convert("HSV"),
                     np.float32).reshape(-1, 3) / 255.0
    hue, sat, val = hsv[:, 0], hsv[:, 1], hsv[:, 2]
    backdrop = (val >= BACKDROP_VALUE) & (sat <= BACKDROP_SATURATION)
    out = np.zeros(FEATURES, np.float64)
    product = ~backdrop
    if product.any():
        h, s, v = hue[product], sat[product], val[product]
        grey = s < GREY_BELOW
        chroma = (np.minimum((h * HUES).astype(int), HUES - 1) * SATURATIONS
                  + np.minimum(((s - GREY_BELOW) / (1 - GREY_BELOW) * SATURATIONS).astype(int), SATURATIONS - 1))
        chroma = chroma * BRIGHTNESSES + np.minimum((v * BRIGHTNESSES).astype(int), BRIGHTNESSES - 1)
        np.add.at(out, chroma[~grey], 1.0)
        np.add.at(out, HUES * SATURATIONS * BRIGHTNESSES + np.minimum((v[grey] * GREYS).astype(int), GREYS - 1), 1.0)
        out[:-1] /= product.sum()
    out[-1] = backdrop.mean()
    return np.sqrt(out)  # Hellinger: a small share of a colour still counts against a large one


def colour_features(blobs: Sequence[bytes], ids: Sequence[str]) -> np.ndarray:
    """(n, FEATURES) histograms of image bytes; a photo that does not decode gets zeros (it has no colour to say)."""
    out = np.zeros((len(blobs), FEATURES), np.float32)
    for row, (blob, pid) in enumerate(zip(blobs, ids, strict=True)):
        try:
            out[row] = colour_histogram(decode_image(bytes(blob), where=f"id {pid}"))
        except Exception:  # noqa: BLE001 (prepare already refuses bad images; a stray one must not stop an audit)
            continue
    return out


@dataclass(frozen=True)
class ColourClassifier:
    """Multinomial logistic regression from `colour_histogram` features to a column's values."""

    weights: np.ndarray  # (FEATURES, values)
    bias: np.ndarray  # (values,)

    def log_probabilities(self, features: np.ndarray) -> np.ndarray:
        """(n, values) log-probability of each value given each photo's colours."""
        logits = np.asarray(features, np.float64) @ self.weights + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))


def fit_colour_classifier(features: np.ndarray, codes: np.ndarray, values: int, seed: int = 0) -> ColourClassifier:
    """Fit on the rows whose value is known (`codes` ≥ 0); every value keeps a bias, seen or not."""
    import torch  # here: tagging without pixel colour, and --help, never pay for it

    known = np.asarray(codes) >= 0
    x = torch.as_tensor(np.asarray(features, np.float32)[known], dtype=torch.float64)
    y = torch.as_tensor(np.asarray(codes)[known], dtype=torch.long)
    generator = torch.Generator().manual_seed(seed)
    weights = (0.01 * torch.randn(x.shape[1], values, generator=generator, dtype=torch.float64)).requires_grad_()
    bias = torch.zeros(values, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weights, bias], max_iter=MAX_ITERATIONS, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ weights + bias, y) + L2 * weights.square().sum()
        loss.backward()
        return loss

    if len(y):
        optimizer.step(closure)
    return ColourClassifier(weights.detach().numpy().copy(), bias.detach().numpy().copy())
