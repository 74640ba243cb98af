"""Fetch the Fashion Product Images catalogue from the Hugging Face Hub or Kaggle, when there is network."""

from __future__ import annotations

from pathlib import Path

from stylesearch.errors import CatalogError
from stylesearch.model.clip import hub_reachable

OFFLINE_HINT = ("Offline? Pass a local catalogue to `stylesearch prepare --data`: a Kaggle folder "
                "(styles.csv + images/), a parquet file in the HF schema, or any CSV/parquet with "
                "--format table and column flags.")


def download_dataset(source: str, name: str, out: Path) -> Path:
    """Download `name` from `source` ('hub' or 'kaggle') into `out`; fail at once when offline."""
    out = Path(out)
    if source == "hub":
        if not hub_reachable():
            raise CatalogError(f"cannot reach the Hugging Face Hub to fetch '{name}'. {OFFLINE_HINT}")
        try:
            import datasets
        except ImportError as err:
            raise CatalogError("downloading from the Hub needs `pip install 'stylesearch[hub]'`") from err
        ds = datasets.load_dataset(name, split="train")
        out.mkdir(parents=True, exist_ok=True)
        target = out / (name.replace("/", "__") + ".parquet")
        ds.to_parquet(str(target))
        return target
    if source == "kaggle":
        if not hub_reachable("www.kaggle.com"):
            raise CatalogError(f"cannot reach Kaggle to fetch '{name}'. {OFFLINE_HINT}")
        try:
            import kagglehub
        except ImportError as err:
            raise CatalogError("downloading from Kaggle needs `pip install 'stylesearch[hub]'`") from err
        return Path(kagglehub.dataset_download(name))
    raise CatalogError(f"unknown source '{source}'; use hub or kaggle")
