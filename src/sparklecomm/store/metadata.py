"""All models of all domains, imported so that Alembic sees the full metadata."""

import sparklecomm.acd.store  # noqa: F401  (registers the routing tables)
from sparklecomm.store.models import Base

target_metadata = Base.metadata
