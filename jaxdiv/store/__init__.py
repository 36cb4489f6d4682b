"""The prediction store shared by all members of a population."""

from jaxdiv.store.importer import import_predictions
from jaxdiv.store.store import Store

__all__ = ["Store", "import_predictions"]
