"""`stylesearch tag`: predict each product's attribute values from its image, with calibrated confidence.

Per column: text prototypes from the train split's words (`curate.vocabulary`), image prototypes (the
mean train image of each value), the votes of each product's nearest train photos (`curate.neighbours`),
for colour columns what the photo's own pixels say (`curate.pixelcolour`), and the train frequencies as a
prior; on the val split, the weights of all but the first and one temperature (`curate.calibrate`) with
the lowest NLL, then a monotone map of the top value's probability to its val accuracy. Then every
product gets its most likely value and a confidence. The image alone decides: a val
or test product's own metadata never reaches its suggestion (a train product's label is one of many in
its value's image prototype, and never votes for itself).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from stylesearch.config import TagConfig
from stylesearch.curate.calibrate import (
    ConfidenceMap,
    Reliability,
    fit_confidence_map,
    fit_temperature,
    nll,
    reliability,
    softmax,
)
from stylesearch.curate.neighbours import Neighbourhood, votes
from stylesearch.curate.pixelcolour import ColourClassifier, colour_features, fit_colour_classifier
from stylesearch.curate.vocabulary import (
    Vocabulary,
    attribute_columns,
    build_vocabulary,
    catalogue_vectors,
    cell_strings,
    index_vectors,
)
from stylesearch.data.prepare import ProcessedCatalog
from stylesearch.errors import CatalogError
from stylesearch.model.encoder import Encoder
from stylesearch.search.searcher import Searcher

# CLIP's own logit scale (its learned temperature is clamped at 100): the "before calibration" reference.
CLIP_TEMPERATURE = 0.01
SUGGESTION_COLUMNS = ("id", "split", "column", "value", "confidence", "current")


@dataclass(frozen=True)
class ColumnModel:
    """One column's prototypes, mix and calibrated temperature, with its val-split reliability before and after."""

    vocabulary: Vocabulary
    images: np.ndarray  # (values, dim): the mean train image of each value, L2-normalised
    log_prior: np.ndarray  # (values,): log share of each value in the train split
    image_weight: float  # image prototypes beside the text ones (0: text alone)
    prior_weight: float  # 0: every value equally likely a priori; 1: as often as in train
    temperature: float
    before: Reliability  # text prototypes alone at CLIP_TEMPERATURE, uniform prior: plain zero-shot CLIP
    after: Reliability  # as fitted
    confidence_map: ConfidenceMap = ConfidenceMap()  # the top value's probability -> its val accuracy
    neighbourhood: Neighbourhood | None = None  # the train images whose values vote (curate.neighbours)
    train_codes: np.ndarray | None = None  # each train image's value, -1 unknown: rows of `neighbourhood`
    neighbour_weight: float = 0.0  # weight of the neighbours' vote shares beside the prototype cosines
    colour: ColourClassifier | None = None  # the photo's pixel colours -> this column's values (colour columns)
    colour_weight: float = 0.0  # weight of its log-probabilities, added after the temperature like the prior

    @property
    def uses_colour(self) -> bool:
        return bool(self.colour_weight) and self.colour is not None

    def probabilities(self, images: np.ndarray, nearest: np.ndarray | None = None,
                      colours: np.ndarray | None = None) -> np.ndarray:
        """Calibrated probability of every value for every image: (images, values).

        `nearest`: the images' train neighbours (`Neighbourhood.nearest`), when a caller already has them.
        `colours`: the photos' `pixelcolour.colour_features`, needed when the model `uses_colour`.
        """
        scores = mixed_scores(self.vocabulary, self.images, images, self.image_weight)
        if self.neighbour_weight and self.neighbourhood is not None and self.train_codes is not None:
            nearest = self.neighbourhood.nearest(images) if nearest is None else nearest
            scores = scores + self.neighbour_weight * votes(nearest, self.train_codes, len(self.vocabulary.values))
        offset: np.ndarray = self.prior_weight * self.log_prior
        if self.uses_colour:
            if colours is None:
                raise ValueError(f"the {self.vocabulary.column} model weighs pixel colours: pass the photos' "
                                 "colour_features")
            assert self.colour is not None
            offset = offset + self.colour_weight * self.colour.log_probabilities(colours)
        return softmax(scores, self.temperature, offset)

    def predict(self, images: np.ndarray, nearest: np.ndarray | None = None,
                colours: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per image, the index of its most likely value and the calibrated confidence that it is right."""
        probs = self.probabilities(images, nearest, colours)
        best = probs.argmax(axis=1)
        return best, self.confidence_map(probs[np.arange(len(best)), best])


def mixed_scores(vocabulary: Vocabulary, prototypes: np.ndarray, images: np.ndarray, weight: float) -> np.ndarray:
    """Cosine with each value's text prototype, plus `weight` x cosine with its image prototype."""
    scores = vocabulary.scores(images)
    return scores + weight * (np.asarray(images, np.float32) @ prototypes.T) if weight else scores


def image_prototypes(vocabulary: Vocabulary, values: pd.Series, vectors: np.ndarray) -> np.ndarray:
    """The mean of each value's image vectors (rows of `vectors` aligned with `values`), L2-normalised."""
    codes = vocabulary.codes(values)
    out = np.zeros_like(vocabulary.prototypes)
    np.add.at(out, codes[codes >= 0], np.asarray(vectors, np.float32)[codes >= 0])
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


@dataclass
class TagResult:
    """Suggestions for every product and column, and the column models that made them."""

    suggestions: pd.DataFrame
    models: dict[str, ColumnModel]

    def calibration(self) -> dict[str, Any]:
        return {c: {"temperature": m.temperature, "values": len(m.vocabulary.values),
                    "image_weight": m.image_weight, "neighbour_weight": m.neighbour_weight,
                    "prior_weight": m.prior_weight, "colour_weight": m.colour_weight,
                    "confidence_map": {"x": list(m.confidence_map.x), "y": list(m.confidence_map.y)},
                    "val_ece_before": m.before.ece, "val_ece_after": m.after.ece,
                    "val_reliability": m.after.to_dict()} for c, m in self.models.items()}


def fit_columns(encoder: Encoder, frame: pd.DataFrame, vectors: np.ndarray, cfg: TagConfig = TagConfig(),
                columns: list[str] | None = None, colours: np.ndarray | None = None) -> dict[str, ColumnModel]:
    """Prototypes from the train split; the mix, prior and temperature with the lowest NLL on the val split.

    `colours`: every row's `pixelcolour.colour_features`, when the caller has them (else made from the images).
    """
    split = frame["split"].astype(str).to_numpy()
    train_rows, val = np.flatnonzero(split == "train"), np.flatnonzero(split == "val")
    if len(train_rows) == 0 or len(val) == 0:
        raise CatalogError("tagging needs a train split (for the prompts) and a val split (for calibration); "
                           "tag a catalogue written by `stylesearch prepare`")
    train = frame.iloc[train_rows]
    hood = Neighbourhood(np.asarray(vectors[train_rows], np.float32), cfg.neighbours)
    val_nearest = hood.nearest(vectors[val]) if any(cfg.neighbour_weights) else None
    models = {}
    columns = columns or attribute_columns(frame, cfg)
    if colours is None and needs_colours(frame, cfg, columns):
        colours = frame_colours(frame)
    for column in columns:
        vocabulary = build_vocabulary(encoder, train, column, cfg)
        images = image_prototypes(vocabulary, train[column], vectors[train_rows])
        log_prior = np.log(np.asarray(vocabulary.support, np.float64) / sum(vocabulary.support))
        codes = vocabulary.codes(frame[column].iloc[val])
        known, labels = val[codes >= 0], codes[codes >= 0]
        train_codes = vocabulary.codes(train[column])
        nearest = None if val_nearest is None else val_nearest[codes >= 0]
        shares = None if nearest is None else votes(nearest, train_codes, len(vocabulary.values))
        colour, colour_logp, colour_weights = None, None, (0.0,)
        if colours is not None and column in cfg.colour_columns:
            colour = fit_colour_classifier(colours[train_rows], train_codes, len(vocabulary.values), cfg.seed)
            colour_logp, colour_weights = colour.log_probabilities(colours[known]), cfg.colour_weights
        best: tuple[float, ...] | None = None  # (nll, image, neighbour, prior and colour weights, temperature)
        for image_weight in cfg.image_weights:
            base = mixed_scores(vocabulary, images, vectors[known], image_weight)
            for neighbour_weight in cfg.neighbour_weights if shares is not None else (0.0,):
                logits = base + neighbour_weight * shares if neighbour_weight else base
                for prior_weight in cfg.prior_weights:
                    for colour_weight in colour_weights:
                        offset = prior_weight * log_prior
                        if colour_weight:
                            offset = offset + colour_weight * colour_logp
                        temperature = fit_temperature(logits, labels, offset=offset)
                        loss = nll(logits, labels, temperature, offset)
                        if best is None or loss < best[0] - 1e-12:
                            best = (loss, image_weight, neighbour_weight, prior_weight, colour_weight, temperature)
        assert best is not None, "TagConfig.image_weights and prior_weights must not be empty"
        _, image_weight, neighbour_weight, prior_weight, colour_weight, temperature = best
        model = ColumnModel(vocabulary, images, log_prior, image_weight, prior_weight, temperature,
                            before=_reliability(softmax(vocabulary.scores(vectors[known]), CLIP_TEMPERATURE),
                                                labels, cfg), after=Reliability((), (), (), ()),
                            neighbourhood=hood, train_codes=train_codes, neighbour_weight=neighbour_weight,
                            colour=colour if colour_weight else None, colour_weight=colour_weight)
        best_value, confidence = model.predict(vectors[known], nearest, None if colours is None else colours[known])
        if cfg.confidence_map:
            model = dataclasses.replace(model, confidence_map=fit_confidence_map(confidence, best_value == labels))
            confidence = model.confidence_map(confidence)  # the map keeps the top value; only its confidence moves
        models[column] = dataclasses.replace(
            model, after=reliability(confidence, best_value == labels, cfg.calibration_bins))
    return models


def _reliability(probs: np.ndarray, labels: np.ndarray, cfg: TagConfig) -> Reliability:
    return reliability(probs.max(axis=1), probs.argmax(axis=1) == labels, cfg.calibration_bins)


def suggest(frame: pd.DataFrame, vectors: np.ndarray, models: dict[str, ColumnModel],
            colours: np.ndarray | None = None) -> pd.DataFrame:
    """One row per product and column: the most likely value, its confidence and the value on file."""
    parts = []
    ids, splits = frame["id"].astype(str).to_numpy(), frame["split"].astype(str).to_numpy()
    nearest = shared_nearest(models, vectors)
    if colours is None and any(m.uses_colour for m in models.values()):
        colours = frame_colours(frame)
    for column, model in models.items():
        best, confidence = model.predict(vectors, nearest, colours)
        parts.append(pd.DataFrame({
            "id": ids, "split": splits, "column": column,
            "value": np.asarray(model.vocabulary.values, dtype=object)[best],
            "confidence": confidence.astype(np.float64),
            "current": pd.Series(cell_strings(frame[column]), dtype="object").to_numpy(),
        }))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(SUGGESTION_COLUMNS))


def shared_nearest(models: dict[str, ColumnModel], images: np.ndarray) -> np.ndarray | None:
    """The images' train neighbours, found once for every column that weighs their votes (None if none does)."""
    hood = next((m.neighbourhood for m in models.values() if m.neighbour_weight and m.neighbourhood), None)
    return None if hood is None else hood.nearest(images)


def needs_colours(frame: pd.DataFrame, cfg: TagConfig, columns: list[str] | None = None) -> bool:
    """Whether a column to fit may weigh pixel colours (then every row's features are made once, up front)."""
    wanted = columns or attribute_columns(frame, cfg)
    return any(cfg.colour_weights) and any(c in cfg.colour_columns for c in wanted) and "image" in frame


def frame_colours(frame: pd.DataFrame) -> np.ndarray:
    """Every row's pixel-colour features (`pixelcolour.colour_features`), from the frame's image bytes."""
    if "image" not in frame:
        raise CatalogError("pixel colours need the catalogue's images: tag a catalogue written by "
                           "`stylesearch prepare`")
    return colour_features(frame["image"].tolist(), frame["id"].astype(str).tolist())


def fill_missing(frame: pd.DataFrame, suggestions: pd.DataFrame,
                 threshold: float) -> tuple[pd.DataFrame, dict[str, int]]:
    """`frame` with each missing cell set to its suggestion when confident enough; values on file are kept."""
    filled = frame.copy()
    counts: dict[str, int] = {}
    row_of = {pid: i for i, pid in enumerate(frame["id"].astype(str))}
    for column, group in suggestions.groupby("column", sort=False):
        chosen = group[group["current"].isna() & (group["confidence"] >= threshold)]
        rows = [row_of[pid] for pid in chosen["id"]]
        if rows:
            if filled[column].dtype != object:
                filled[column] = filled[column].astype(object)  # a category or string dtype may lack the value
            filled.iloc[rows, filled.columns.get_loc(column)] = chosen["value"].to_numpy()
        counts[str(column)] = len(rows)
    return filled, counts


def tag_catalogue(searcher: Searcher, catalog: ProcessedCatalog, cfg: TagConfig = TagConfig(),
                  columns: list[str] | None = None) -> TagResult:
    """Suggest every product's attribute values from its image, with val-calibrated confidence."""
    frame = catalog.frame.reset_index(drop=True)
    vectors = catalogue_vectors(frame, searcher.encoder, index_vectors(searcher))
    colours = frame_colours(frame) if needs_colours(frame, cfg, columns) else None
    models = fit_columns(searcher.encoder, frame, vectors, cfg, columns, colours)
    suggestions = suggest(frame, vectors, models, colours)
    return TagResult(suggestions, models)
