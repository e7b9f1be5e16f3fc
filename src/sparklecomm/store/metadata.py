"""All models of all domains, imported so that Alembic sees the full metadata."""

# Imported for their side effect: each registers its tables on Base.metadata.
import sparklecomm.acd.store  # routing journal and snapshots
import sparklecomm.customers.models  # customers, interaction notes, desk codes
import sparklecomm.telephony.extensions  # noqa: F401  (SIP extensions)
from sparklecomm.store.models import Base

target_metadata = Base.metadata
