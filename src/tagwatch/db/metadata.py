"""The full metadata: every domain's tables, imported through the domain list."""

from __future__ import annotations

from sqlalchemy import MetaData

from tagwatch.db.base import Base
from tagwatch.domains import domain_modules


def load_metadata() -> MetaData:
    for _module in domain_modules("models"):
        pass
    return Base.metadata
