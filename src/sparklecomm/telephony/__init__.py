"""Telephony: the SIP stack (message layer in :mod:`sparklecomm.telephony.sip`; transports,
transactions, digest auth and the registrar beside it) and, later, media.

The composition root builds a :class:`SipServer` from a :class:`SipServerConfig`, a clock,
a :class:`CredentialStore` and a :class:`LocationStore`; see ``docs/telephony.md``.
"""

from sparklecomm.telephony.server import (
    ALLOWED_METHODS,
    SipServer,
    SipServerConfig,
)
from sparklecomm.telephony.sip.digest import (
    CredentialStore,
    DigestAuthenticator,
    InMemoryCredentialStore,
    compute_ha1,
)
from sparklecomm.telephony.sip.location import (
    Binding,
    BindingPersistence,
    InMemoryLocationStore,
    JsonFilePersistence,
    LocationStore,
)
from sparklecomm.telephony.sip.registrar import Registrar, RegistrarPolicy
from sparklecomm.telephony.sip.timers import FakeScheduler, LoopScheduler, Scheduler, TimerConfig
from sparklecomm.telephony.sip.transport import Peer, loopback_only

__all__ = [
    "ALLOWED_METHODS",
    "Binding",
    "BindingPersistence",
    "CredentialStore",
    "DigestAuthenticator",
    "FakeScheduler",
    "InMemoryCredentialStore",
    "InMemoryLocationStore",
    "JsonFilePersistence",
    "LocationStore",
    "LoopScheduler",
    "Peer",
    "Registrar",
    "RegistrarPolicy",
    "Scheduler",
    "SipServer",
    "SipServerConfig",
    "TimerConfig",
    "compute_ha1",
    "loopback_only",
]
