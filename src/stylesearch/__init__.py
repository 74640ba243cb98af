"""stylesearch: fine-tune CLIP on a clothing catalogue and search it by words or pictures."""

__version__ = "0.1.0"
