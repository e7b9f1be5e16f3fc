"""All models of all domains, imported so that Alembic sees the full metadata."""

# Imported for their side effect: each registers its tables on Base.metadata.
import sparklecomm.acd.store  # routing journal and snapshots
import sparklecomm.customers.models  # customers, interaction notes, desk codes
import sparklecomm.stats.models  # wallboard alert thresholds
import sparklecomm.telephony.extensions  # SIP extensions
import sparklecomm.telephony.pbx.models  # noqa: F401  (DIDs, ring groups, trunks ...)
from sparklecomm.store.models import Base

target_metadata = Base.metadata
