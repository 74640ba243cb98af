"""Typed, frozen configuration per pipeline stage; every default says why it is what it is."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

DEFAULT_MODEL = "openai/clip-vit-base-patch32"
DEFAULT_HUB_DATASET = "ashraq/fashion-product-images-small"

# The Kaggle styles.csv attribute columns, in file order; productDisplayName is the title.
KAGGLE_ATTRIBUTES = (
    "gender",
    "masterCategory",
    "subCategory",
    "articleType",
    "baseColour",
    "season",
    "year",
    "usage",
)


@dataclass(frozen=True)
class ColumnMapping:
    """Which source columns hold the id, the image and the text of a product."""

    id: str = "id"
    image: str = "image"  # a path (relative to the catalogue file) or raw bytes
    title: str = "productDisplayName"
    attributes: tuple[str, ...] = KAGGLE_ATTRIBUTES


@dataclass(frozen=True)
class PrepareConfig:
    # The title alone misses colour and type words that shoppers type; attributes fill the gap.
    text_columns: tuple[str, ...] = ("productDisplayName", "baseColour", "articleType", "gender", "usage")
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)  # the default train/val/test
    stratify_by: str = "articleType"  # 141 skewed types: unstratified splits starve rare ones in test
    seed: int = 0  # the split must be reproducible run to run
    max_image_pixels: int = 40_000_000  # above this PIL would decode a decompression bomb
    check_images: bool = True  # decode every image once so bad files are dropped here, not mid-training


@dataclass(frozen=True)
class TinyPreset:
    """The shape of a random-init CLIP preset; the defaults are `tiny`, for tests and the offline demo.

    `stylesearch.model.presets` names every shape with the training recipe that suits it.
    """

    hidden: int = 64
    layers: int = 2
    heads: int = 4
    projection_dim: int = 64
    image_size: int = 64  # the shared photos are 60x80; 64 keeps their detail at tiny cost
    patch_size: int = 8
    max_text_tokens: int = 77  # same context as real CLIP so truncation behaves the same
    mlp_ratio: int = 4  # the transformer MLP width as a multiple of `hidden`, as in CLIP
    # Resize the whole photo to a square instead of CLIP's shortest-edge resize + centre crop, which cuts
    # the top and bottom quarter of a 60x80 product shot (collars, hems, shoe soles). `small` does; `tiny`
    # keeps the crop its tests and figures were made with. Either way the pixel cache holds what the
    # processor makes, so training and search see the same framing.
    squash: bool = False
    # "conv": stride-2 3x3 convolutions in place of the linear patchify (model/stem.py); "patch" is CLIP's own.
    stem: str = "patch"
    text_layers: int | None = None  # the text tower's depth when it differs from the vision tower's (`layers`)


@dataclass(frozen=True)
class TrainConfig:
    base_model: str = DEFAULT_MODEL
    lr: float = 5e-6  # fine-tuning: far below pre-training lr, or the model forgets
    weight_decay: float = 0.2  # CLIP's own recipe
    batch_size: int = 32  # in-batch negatives; larger batches give harder negatives
    epochs: int = 5
    warmup_steps: int = 50  # a short ramp avoids wrecking pre-trained weights on step one
    patience: int = 2  # early stop on validation recall, not loss
    max_minutes: float | None = None  # wall-clock budget besides the epoch count
    grad_clip: float = 1.0  # contrastive losses spike when the temperature moves
    freeze_vision_layers: int = 0
    freeze_text_layers: int = 0
    hue_jitter: bool = False  # captions name colours; recolouring images teaches lies
    amp: bool = True  # only takes effect on a GPU
    seed: int = 0
    num_workers: int = 0  # image decode workers; 0 keeps tests simple and CPU runs predictable
    save_every_steps: int = 200  # a killed run loses at most this many steps
    # Issue 5 options (stylesearch.train.sampler, stylesearch.train.textviews); defaults chosen by docs/quality.md.
    sampler: str = "random"  # random | confusable | mixed | hard
    # full_text | views | views-sum | one view name. "views": attribute P@10 +0.014 on all 3 seeds at no
    # extra cost; views-sum gains +0.018 but doubles a ViT-B/32 step (docs/quality.md).
    text_views: str = "views"
    # With text_views "views": the chance a step's text is the product's title, the rest spread evenly
    # over its other views. None draws every view evenly (a title is then 1 draw in 5 or 6).
    title_share: float | None = None
    val_max_items: int = 2000  # full-gallery recall over more is slow on a CPU and no more telling
    # Issue 12 options. The defaults suit fine-tuning a pretrained ViT-B/32; the from-scratch presets
    # (`stylesearch.model.presets`) set their own, chosen by benchmarks/train_budget.py.
    # Decode every image once into a memory-mapped uint8 array beside the catalogue and augment tensors:
    # off by default because at ViT-B/32's 224 px the array costs 150 KB a product on disk.
    pixel_cache: bool = False
    # bfloat16 autocast on a CPU with AVX-512 BF16 (or AMX): measured 1.3-1.45x on 128-256 wide towers,
    # slower on the 64-wide `tiny` (docs/pipeline.md). On a GPU `amp` decides.
    bf16: bool = False
    threads: int | None = None  # torch intra-op threads; None keeps torch's default (OMP_NUM_THREADS)
    # The text tower runs on this many length buckets: the same embeddings, a third of the work (towers.py).
    text_buckets: int = 4
    augment: str = "crop-flip-rotate"  # crop-flip-rotate (the fine-tune default) | crop-flip | flip | none
    # softmax: CLIP's InfoNCE over the batch. sigmoid: SigLIP's pairwise loss with a learned bias, said to
    # win at small batches (Zhai et al., 2023); measured in docs/pipeline.md.
    loss: str = "softmax"


@dataclass(frozen=True)
class EvalConfig:
    batch_size: int = 32  # the in-batch accuracy earlier fine-tunes of this catalogue report
    ks: tuple[int, ...] = (1, 5, 10)
    category_columns: tuple[str, ...] = ("masterCategory", "subCategory", "articleType", "baseColour")
    max_items: int | None = None  # cap the gallery for quick runs


@dataclass(frozen=True)
class IndexConfig:
    batch_size: int = 64  # measured sweet spot for ViT-B/32 on 2 CPU cores (benchmarks/)
    chunk_size: int = 2048  # most vectors per resumable chunk on disk (index.embedding sizes them by the catalogue)
    exact_max: int = 200_000  # a flat scan costs ~0.2 us CPU a vector: at 200k, as much as encoding the query
    # A name in index.kinds.KINDS; auto: flat up to exact_max products, IVF-PQ above. At 1M it builds in ~2 min
    # with 81 MB in RAM, p50 0.4 ms, recall@10 1.000 (HNSW: 1,121 s and 2.1 GB; benchmarks/million.py).
    kind: str = "auto"
    # HNSW settings measured at 1M vectors (docs/performance.md): recall@10 0.961 at p50 0.6 ms on 2 cores.
    hnsw_m: int = 16  # graph degree; M=32 built 3x slower on 100k vectors for recall 1.000 vs 0.999
    hnsw_ef_construction: int = 40  # build-time beam; 80 cost 3x the build time for no measurable recall
    hnsw_ef_search: int = 256  # query-time beam: 128 gave recall@10 0.941 at 1M, below the 0.95 target
    ivf_nprobe: int = 16  # lists scanned per ivfpq query; recall is bounded by PQ codes anyway
    ivf_nlist: int = 0  # inverted lists of an ivfpq index; 0: 4 sqrt(products), measured at 1M


@dataclass(frozen=True)
class ServeConfig:
    host: str = "127.0.0.1"  # never expose a dev server to the network by accident
    port: int = 8000
    max_upload_bytes: int = 10 * 1024 * 1024
    max_query_chars: int = 512
    max_k: int = 100
    cors_origins: tuple[str, ...] = field(default_factory=tuple)  # closed unless asked for
    # Build hybrid search's BM25 index in the background at start-up: "Match words" answers at once.
    # Off saves its memory (a second copy of the product table) when nobody uses mode=hybrid.
    warm_hybrid: bool = True
    # A body that stops arriving for this long is answered 408 and closed: an upload that declares
    # 100 KB and then stalls would otherwise hold its connection (and its slot) forever.
    body_timeout_s: float = 10.0
    # Uploads decoded and encoded at once; more queue on the CPU anyway, so the rest get 503 at once.
    max_concurrent_uploads: int = 8
    # Reload the index when `stylesearch index` rewrites it (serve.reload): polling one stat() a few
    # seconds apart costs nothing, and nobody has to remember to restart the server.
    watch_index: bool = True
    reload_poll_s: float = 2.0


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (nested) config dataclass."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Rebuild a config dataclass from a saved dict, turning lists back into tuples."""
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in names}
    return cls(**kwargs)


# --- curate: tag, audit, compose (stylesearch.curate) ---------------------------------------------


@dataclass(frozen=True)
class TagConfig:
    # The Kaggle columns a shopper filters on; masterCategory/subCategory follow from articleType.
    columns: tuple[str, ...] = ("articleType", "baseColour", "gender", "usage", "season")
    # A user column is tagged too when it has 2..max_user_values values: more is an id or free text.
    max_user_values: int = 30
    min_examples: int = 3  # a value seen fewer times in train has no reliable prompt set (and no support)
    # Catalogue texts averaged into one prompt per value: enough to cover its other attributes, cheap to encode.
    prompts_per_value: int = 64
    calibration_bins: int = 15  # ECE's usual bin count; fewer hides miscalibration, more is noise on 3k rows
    # After the temperature, map the top value's probability to its val accuracy (isotonic): one temperature
    # left colour and usage at test ECE 0.070 and 0.064, its curve too flat at one end (docs/catalogue.md).
    confidence_map: bool = True
    fill_threshold: float = 0.9  # calibrated confidence a missing value needs before it is written in
    seed: int = 0  # which catalogue texts make the prompts
    # Weights of the image prototypes (mean train image per value) beside the text ones, and whether to add
    # the train split's log value frequencies: each column takes the pair with the lowest val NLL. Text alone
    # at a uniform prior tagged colour no better than the majority value with a 12-minute model (docs/catalogue.md).
    image_weights: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 4.0)
    prior_weights: tuple[float, ...] = (0.0, 1.0)
    # Weights of the k nearest train images' vote shares (curate.neighbours), fitted the same way; (0.0,) turns
    # the vote off. A value's look-alikes carry what one prototype per value cannot (docs/catalogue.md).
    neighbour_weights: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0, 8.0)
    neighbours: int = 10  # train images that vote: enough to outvote one odd look-alike, few enough to stay local
    # Columns that also hear the photo's own pixel colours (curate.pixelcolour), at the weight of these with the
    # lowest val NLL; (0.0,) turns them off. A 64-pixel CLIP reads type far better than colour (docs/catalogue.md).
    colour_columns: tuple[str, ...] = ("baseColour",)
    colour_weights: tuple[float, ...] = (0.0, 0.5, 1.0)


@dataclass(frozen=True)
class AuditConfig:
    columns: tuple[str, ...] = ("articleType", "baseColour", "gender")  # the mislabels a shopper notices
    top: int = 200  # findings on the HTML page; the parquet holds every product
    # Image cosine above which two ids are called near-duplicates: the same photo re-encoded or resized
    # scores 0.99+, while two products of one type and colour rarely pass 0.97 (docs/catalogue.md).
    duplicate_cosine: float = 0.98
    max_duplicates: int = 1000  # pairs listed; a catalogue with more has a feed problem, not a few twins
    # And the photos' 16x16 thumbnails must differ by at most this mean share of 255. With a 12-minute model
    # cosine alone paired look-alike shots of different products; at 0.01 the pairs left are the same photo,
    # often filed under several shade names (docs/catalogue.md).
    max_pixel_difference: float = 0.01
    flip_share: float = 0.02  # the injection rate for the measurement
    # Let the nearest train images vote in the audit's column models too. They raised tagging accuracy on
    # every column but not the audit's precision@100 (0.66 against 0.69 over 3 seeds, docs/catalogue.md).
    neighbour_votes: bool = False
    seed: int = 0


@dataclass(frozen=True)
class ComposeConfig:
    # "like this, but in red" = image + w_delta * (text(new) - text(current)) + w_text * text(new).
    # Image-text cosines are far smaller than image-image ones, so the text terms need weights above 1 to
    # move the query at all; the best of a 7x7 grid on 1,000 val pairs (docs/catalogue.md).
    w_delta: float = 1.0
    w_text: float = 5.0
    # Columns an edit can name, first match wins a word: colour edits are what shoppers ask most.
    columns: tuple[str, ...] = ("baseColour", "articleType", "gender", "usage", "season")
    # The catalogue view the model was trained on (train.textviews gender_colour_type), so old and new
    # texts differ only in the edited words.
    view: tuple[str, ...] = ("gender", "baseColour", "articleType")
