"""All models of all domains, imported so that Alembic sees the full metadata."""

# Imported for their side effect: each registers its tables on Base.metadata.
import sparklecomm.acd.store  # routing journal and snapshots
import sparklecomm.customers.models  # noqa: F401  (customers, interaction notes, desk codes)
from sparklecomm.store.models import Base

target_metadata = Base.metadata
