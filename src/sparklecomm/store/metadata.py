"""All models of all domains, imported so that Alembic sees the full metadata."""

from sparklecomm.store.models import Base

target_metadata = Base.metadata
