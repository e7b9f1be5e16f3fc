"""Encryption of trunk passwords at rest (they must be recoverable: we answer the carrier's
digest challenge with them, so hashing is not an option).

Standard library only: an encrypt-then-MAC construction with HMAC-SHA256 as a PRF in
counter mode for the keystream and HMAC-SHA256 (truncated to 128 bits) as the tag, under two
keys derived from the platform's secret key. A random 128-bit nonce per value. Anyone with
the database but without the secret key learns nothing but the length; changing the secret
key makes the stored trunk passwords unreadable (set them again).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

PREFIX = "v1:"
NONCE = 16
TAG = 16


class SecretBox:
    def __init__(self, secret: str | bytes) -> None:
        raw = secret.encode() if isinstance(secret, str) else secret
        self._enc = hmac.new(raw, b"sparklecomm pbx trunk password: encryption", "sha256").digest()
        self._mac = hmac.new(raw, b"sparklecomm pbx trunk password: mac", "sha256").digest()

    def _stream(self, nonce: bytes, length: int) -> bytes:
        out = bytearray()
        counter = 0
        while len(out) < length:
            out += hmac.new(self._enc, nonce + counter.to_bytes(8, "big"), "sha256").digest()
            counter += 1
        return bytes(out[:length])

    def encrypt(self, plaintext: str) -> str:
        data = plaintext.encode()
        nonce = os.urandom(NONCE)
        cipher = bytes(a ^ b for a, b in zip(data, self._stream(nonce, len(data)), strict=True))
        tag = hmac.new(self._mac, nonce + cipher, hashlib.sha256).digest()[:TAG]
        return PREFIX + base64.urlsafe_b64encode(nonce + cipher + tag).decode()

    def decrypt(self, token: str) -> str:
        """The plaintext; ``ValueError`` if the value was altered or the key changed."""
        if not token.startswith(PREFIX):
            raise ValueError("not an encrypted value")
        blob = base64.urlsafe_b64decode(token[len(PREFIX) :].encode())
        if len(blob) < NONCE + TAG:
            raise ValueError("encrypted value too short")
        nonce, cipher, tag = blob[:NONCE], blob[NONCE:-TAG], blob[-TAG:]
        expected = hmac.new(self._mac, nonce + cipher, hashlib.sha256).digest()[:TAG]
        if not hmac.compare_digest(tag, expected):
            raise ValueError("encrypted value does not verify (altered, or another key)")
        stream = self._stream(nonce, len(cipher))
        return bytes(a ^ b for a, b in zip(cipher, stream, strict=True)).decode()
