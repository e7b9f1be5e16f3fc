"""Survey links: signed, expiring tokens that let a customer (not a user) answer one survey.

A token names everything the answer needs (organisation, interaction, queue, agent, channel,
scale, expiry) and carries an HMAC-SHA256 of that over a key derived from the platform's
secret, so any node verifies any other node's links without a table of issued links, and a
customer cannot change the interaction, the agent or the scale without the signature
failing. Form: ``base64url(json facts) "." base64url(signature)``, no padding.

Why not a library (itsdangerous, a JWT package): neither is a dependency, and what is needed
here is one HMAC and a JSON object, some twenty lines of the standard library whose every
choice is visible (no algorithm negotiation to get wrong, as "alg: none" was for JWT).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sparklecomm.core.errors import DomainError, NotFound

#: What separates a link's facts from their signature (not in the base64url alphabet).
SEPARATOR = "."
#: The longest token accepted: ids of 32 to 64 characters make tokens of about 300.
MAX_TOKEN = 1000


class SurveyLinkExpired(DomainError):
    """The link was genuine but its time is over: the customer is told, not blamed."""

    status = 410
    title = "Survey link expired"
    code = "survey_link_expired"


@dataclass(frozen=True, slots=True)
class SurveyLink:
    """What a verified token says: whose interaction the customer rates, on which scale."""

    tenant_id: str
    interaction_id: str
    queue_id: str | None
    agent_id: str | None
    channel: str
    max_score: int
    expires_at: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkSigner:
    """Signs and verifies survey links with a key derived from the platform's secret.

    ``secret`` may be a callable (``Settings.effective_secret_key``) so that the key is read
    when the first link is made, not when the services are built."""

    def __init__(self, secret: str | Callable[[], str]) -> None:
        self._secret = secret
        self._key: bytes | None = None

    def _derived_key(self) -> bytes:
        if self._key is None:
            secret = self._secret() if callable(self._secret) else self._secret
            # A key of its own: a survey link's signature is worthless anywhere else (the
            # SIP nonces are signed with another key derived from the same secret).
            self._key = hashlib.sha256(b"survey-link:v1:" + secret.encode()).digest()
        return self._key

    def _signature(self, body: str) -> bytes:
        return hmac.new(self._derived_key(), body.encode("ascii"), hashlib.sha256).digest()

    def sign(self, link: SurveyLink) -> str:
        facts = {
            "t": link.tenant_id,
            "i": link.interaction_id,
            "q": link.queue_id,
            "a": link.agent_id,
            "c": link.channel,
            "m": link.max_score,
            "e": int(link.expires_at.timestamp()),
        }
        body = _b64(json.dumps(facts, separators=(",", ":")).encode())
        return f"{body}{SEPARATOR}{_b64(self._signature(body))}"

    def verify(self, token: str, now: datetime) -> SurveyLink:
        """The link ``token`` stands for. NotFound when it is not one of ours (forged,
        altered, cut short when copied); :class:`SurveyLinkExpired` when its time is over.
        The signature is checked before anything in the token is believed."""
        invalid = NotFound(
            "This survey link is not valid: check that the whole link was copied.",
            field="token",
        )
        if not isinstance(token, str) or len(token) > MAX_TOKEN or token.count(SEPARATOR) != 1:
            raise invalid
        body, signature = token.split(SEPARATOR)
        try:
            expected = _b64(self._signature(body))
        except UnicodeEncodeError:  # not base64url: not ours
            raise invalid from None
        # The encoded forms are compared (not the decoded bytes: a decoder that skips
        # stray characters would let several spellings of one token through).
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            raise invalid
        try:
            facts = json.loads(_unb64(body))
            link = SurveyLink(
                tenant_id=str(facts["t"]),
                interaction_id=str(facts["i"]),
                queue_id=None if facts["q"] is None else str(facts["q"]),
                agent_id=None if facts["a"] is None else str(facts["a"]),
                channel=str(facts["c"]),
                max_score=int(facts["m"]),
                expires_at=datetime.fromtimestamp(int(facts["e"]), UTC),
            )
        except (binascii.Error, ValueError, KeyError, TypeError, OverflowError):
            raise invalid from None  # signed by us, so never seen: still no 500
        if now >= link.expires_at:
            raise SurveyLinkExpired(
                "This survey link has expired: thank you all the same.", field="token"
            )
        return link
