"""Fast CLIP image preprocessing, and a DataLoader that decodes images in parallel with the model.

`ClipPreprocess` does what transformers' `CLIPImageProcessor` does (shortest edge to `size` with
antialiased bicubic, centre crop, rescale and normalise with CLIP's mean and std) with torchvision
transforms v2 on uint8 tensors, one image at a time, so it can run in DataLoader workers. It
follows the processor's own torchvision backend step for step; tests/model/test_preprocess.py checks
the pixels and the embeddings against it.

`iter_pixel_batches` decodes JPEG bytes with `stylesearch.data.images.decode_image` (bomb-safe, any mode
to RGB) in worker processes while the main process runs the model on the previous batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from stylesearch.data.images import decode_image
from stylesearch.model.clip import CLIP_MEAN, CLIP_STD
from stylesearch.model.encoder import DEFAULT_BATCH_SIZE, DEFAULT_WORKERS


@dataclass(frozen=True)
class ClipPreprocess:
    """Resize (shortest edge, bicubic, antialias), centre crop, normalise: CLIPImageProcessor's steps."""

    shortest_edge: int = 224
    crop: tuple[int, int] = (224, 224)  # (height, width)
    mean: tuple[float, ...] = CLIP_MEAN
    std: tuple[float, ...] = CLIP_STD
    squash: bool = False  # resize the whole image to `crop` (no centre crop), as the presets' processor does

    @classmethod
    def from_processor(cls, processor: Any) -> ClipPreprocess:
        """The same steps as a `CLIPImageProcessor` (its size, crop, mean and std)."""
        size = dict(processor.size)
        crop = dict(processor.crop_size)
        mean = tuple(float(m) for m in processor.image_mean)
        std = tuple(float(s) for s in processor.image_std)
        if not getattr(processor, "do_center_crop", True) and "height" in size:
            return cls(shortest_edge=min(size["height"], size["width"]), crop=(int(size["height"]), int(size["width"])),
                       mean=mean, std=std, squash=True)
        edge = size.get("shortest_edge") or min(size["height"], size["width"])
        return cls(shortest_edge=int(edge), crop=(int(crop["height"]), int(crop["width"])), mean=mean, std=std)

    @classmethod
    def square(cls, size: int) -> ClipPreprocess:
        return cls(shortest_edge=size, crop=(size, size))

    def crop_uint8(self, image: Image.Image) -> torch.Tensor:
        """Resize and centre-crop (or squash) one image: (3, height, width) uint8, still in 0..255."""
        if self.squash:
            return self._resize(_to_uint8_chw(image))
        return _centre_crop(self._resize(_to_uint8_chw(image)), self.crop)

    def normalise(self, crops: torch.Tensor) -> torch.Tensor:
        """uint8 crops (n, 3, h, w) to float32 model input; rescale and normalise fused in one step."""
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1) * 255
        inv_std = 1.0 / (torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1) * 255)
        return (crops.to(torch.float32) - mean) * inv_std

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """One RGB PIL image to a (3, height, width) float32 tensor."""
        return self.normalise(self.crop_uint8(image)[None])[0]

    def batch(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """A list of PIL images to a (n, 3, height, width) float32 tensor."""
        if not images:
            return torch.zeros((0, 3, *self.crop), dtype=torch.float32)
        # Geometry per image (sizes differ), then one vectorised normalise over the whole batch.
        # On one thread: a 2-thread pool costs ~8 ms per small resize on a busy 2-core box, 1 thread ~0.9 ms.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            crops = torch.stack([self.crop_uint8(im) for im in images])
        finally:
            torch.set_num_threads(threads)
        return self.normalise(crops)

    @property
    def _resize(self) -> v2.Resize:
        # Resizing uint8 keeps torchvision on its fast antialiased path, the one the processor takes.
        cached = self.__dict__.get("_cached_resize")
        if cached is None:
            size = list(self.crop) if self.squash else self.shortest_edge
            cached = v2.Resize(size, interpolation=v2.InterpolationMode.BICUBIC, antialias=True)
            object.__setattr__(self, "_cached_resize", cached)  # frozen dataclass: build once, keep
        return cached


def _centre_crop(image: torch.Tensor, crop: tuple[int, int]) -> torch.Tensor:
    # The processor's offsets: int((h - ch) / 2) rounds an odd margin down, where torchvision's
    # CenterCrop rounds it half-to-even (one pixel off on e.g. a 33x101 photo).
    height, width = image.shape[-2:]
    crop_h, crop_w = crop
    if crop_h > height or crop_w > width:  # only when crop > shortest edge: pad with black, as the processor does
        pad_w, pad_h = max(crop_w - width, 0), max(crop_h - height, 0)
        image = torch.nn.functional.pad(image, (pad_w // 2, (pad_w + 1) // 2, pad_h // 2, (pad_h + 1) // 2))
        height, width = image.shape[-2:]
    top, left = int((height - crop_h) / 2.0), int((width - crop_w) / 2.0)
    return image[..., top : top + crop_h, left : left + crop_w]


def _to_uint8_chw(image: Image.Image) -> torch.Tensor:
    # The processor's torchvision backend also starts from the PIL image's uint8 HWC array.
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    return torch.from_numpy(np.asarray(rgb).copy()).permute(2, 0, 1).contiguous()


class ImageBytesDataset(Dataset):
    """Encoded images (JPEG/PNG bytes) to preprocessed tensors; item i raises CatalogError if i is bad."""

    def __init__(self, blobs: Sequence[bytes], preprocess: ClipPreprocess, where: Sequence[str] | None = None):
        self.blobs = blobs
        self.preprocess = preprocess
        self.where = where

    def __len__(self) -> int:
        return len(self.blobs)

    def __getitem__(self, i: int) -> torch.Tensor:
        where = self.where[i] if self.where is not None else f"image {i}"
        return self.preprocess.crop_uint8(decode_image(bytes(self.blobs[i]), where=where))


class _NormaliseBatch:
    """collate_fn: stack uint8 crops and normalise them in the worker, so the main process only runs the model."""

    def __init__(self, preprocess: ClipPreprocess):
        self.preprocess = preprocess

    def __call__(self, crops: list[torch.Tensor]) -> torch.Tensor:
        return self.preprocess.normalise(torch.stack(crops))


def _one_thread(_: int) -> None:
    # Workers only decode and resize; torch's default pool would fight the model for the same cores.
    torch.set_num_threads(1)


def iter_pixel_batches(image_bytes_list: Sequence[bytes], size: int | ClipPreprocess = 224, batch_size: int = 32,
                       num_workers: int = DEFAULT_WORKERS, *, where: Sequence[str] | None = None
                       ) -> Iterator[torch.Tensor]:
    """Yield (b, 3, h, w) float32 pixel batches, in input order, decoded in `num_workers` processes.

    `size` is the model's image size (square crop, CLIP mean/std) or a full `ClipPreprocess`. With
    workers, batch k+1 is decoded while the caller runs the model on batch k.
    """
    preprocess = size if isinstance(size, ClipPreprocess) else ClipPreprocess.square(int(size))
    dataset = ImageBytesDataset(image_bytes_list, preprocess, where)
    if len(dataset) == 0:
        return
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=_NormaliseBatch(preprocess),
                        worker_init_fn=_one_thread if num_workers else None,
                        prefetch_factor=2 if num_workers else None, persistent_workers=False)
    yield from loader


def embed_image_bytes(encoder: Any, image_bytes_list: Sequence[bytes], *, preprocess: ClipPreprocess | None = None,
                      batch_size: int = DEFAULT_BATCH_SIZE, num_workers: int = DEFAULT_WORKERS,
                      where: Sequence[str] | None = None, progress: Callable[[int], Any] | None = None) -> np.ndarray:
    """Embed encoded images with an encoder that has `encode_pixels` (ClipEncoder, OnnxEncoder).

    Decoding and preprocessing run in `num_workers` processes, overlapped with the model. Returns
    (n, dim) float32 L2-normalised rows in input order.
    """
    preprocess = preprocess or ClipPreprocess.from_processor(encoder.image_processor)
    parts = [np.zeros((0, encoder.dim), np.float32)]
    for pixels in iter_pixel_batches(image_bytes_list, preprocess, batch_size, num_workers, where=where):
        parts.append(np.asarray(encoder.encode_pixels(pixels), dtype=np.float32))
        if progress is not None:
            progress(len(pixels))
    return np.concatenate(parts)
