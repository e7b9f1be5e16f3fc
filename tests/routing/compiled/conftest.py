"""The compiled routing core's tests skip where it is not built, except where it is required:
``SPARKLECOMM_ROUTING_CORE=compiled`` (CI sets it) makes a missing build an error."""

from __future__ import annotations

import os

if os.environ.get("SPARKLECOMM_ROUTING_CORE", "").strip().lower() == "compiled":
    import sparklecomm.acd._acd_core  # noqa: F401  (raises ImportError when not built)
