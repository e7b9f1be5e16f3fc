"""Telephony: the SIP stack (message layer in :mod:`sparklecomm.telephony.sip`; transports,
transactions, dialogs, digest auth and the registrar beside it), call control (the B2BUA,
:mod:`sparklecomm.telephony.calls`), SDP (:mod:`sparklecomm.telephony.sdp`) and media.

The composition root builds a :class:`SipServer` from a :class:`SipServerConfig`, a clock,
a :class:`CredentialStore` and a :class:`LocationStore`; see ``docs/telephony.md``.
"""

from sparklecomm.telephony.calls import (
    AnyExtensionRouter,
    Call,
    CallManager,
    ExtensionRouter,
    Leg,
    Trunk,
)
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
    "AnyExtensionRouter",
    "Binding",
    "BindingPersistence",
    "Call",
    "CallManager",
    "CredentialStore",
    "DigestAuthenticator",
    "ExtensionRouter",
    "FakeScheduler",
    "InMemoryCredentialStore",
    "InMemoryLocationStore",
    "JsonFilePersistence",
    "Leg",
    "LocationStore",
    "LoopScheduler",
    "Peer",
    "Registrar",
    "RegistrarPolicy",
    "Scheduler",
    "SipServer",
    "SipServerConfig",
    "TimerConfig",
    "Trunk",
    "compute_ha1",
    "loopback_only",
]
