"""Catalogue intelligence over the fine-tuned model and the index: tag, audit, compose.

- `tag`: predict attribute values from each image, with a temperature calibrated on the val split.
- `audit`: rank products whose image contradicts their metadata; list near-duplicate ids.
- `compose`: "like this, but in red": an item's image vector moved by a text edit.

Each works on a `Searcher` (index + the model it names, from `search.searcher.open_searcher`) and a
processed catalogue; `measure` holds the figures of docs/catalogue.md, `report` the HTML pages.
"""
