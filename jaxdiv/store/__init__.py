"""The prediction store shared by all members of a population."""

from jaxdiv.store.importer import add_member, import_predictions
from jaxdiv.store.store import Store

__all__ = ["Store", "add_member", "import_predictions"]
