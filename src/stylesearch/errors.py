"""Typed errors raised by the library; only the CLI and the server turn them into exit codes or 4xx."""


class StylesearchError(Exception):
    """Base class: a user-facing problem with a message that says what to do."""


class CatalogError(StylesearchError):
    """A catalogue file, row or field that cannot be used."""


class ModelUnavailableError(StylesearchError):
    """Weights that are neither local, cached nor reachable."""


class ManifestMismatchError(StylesearchError):
    """A stage was handed files made for another model, catalogue or format."""


class IntegrityError(StylesearchError):
    """A file whose content no longer matches the hash its manifest recorded."""


class QueryError(StylesearchError):
    """A search request that cannot be answered as asked (empty query, unknown filter, ...)."""


class ResumeMismatchError(ManifestMismatchError):
    """`--resume` asked for settings that differ from those the run was started with."""


class IndexKindError(StylesearchError):
    """An index kind that does not exist, or cannot be built over this many products."""
