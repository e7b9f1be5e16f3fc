"""Toll-fraud guard: blocking after failed authentications, rate limits, trusted trunks."""

from __future__ import annotations

import pytest
import structlog

from sparklecomm.core.clock import FakeClock
from sparklecomm.telephony.pbx.crypto import SecretBox
from sparklecomm.telephony.pbx.fraud import FraudGuard, source_host


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_repeated_failures_block_for_a_growing_period(clock: FakeClock) -> None:
    guard = FraudGuard(clock, max_failures=3, failure_window=60, block_seconds=100)
    src = "192.0.2.7:5060"
    for _ in range(2):
        guard.failed(src)
    assert guard.allow(src)
    guard.failed("192.0.2.7:40000")  # another port, same host: same attacker
    assert not guard.allow(src)
    assert guard.blocked_for(src) == pytest.approx(100)
    assert guard.allow("192.0.2.8:5060")  # others are not affected
    clock.advance(99)
    assert not guard.allow(src)
    clock.advance(2)
    assert guard.allow(src)
    for _ in range(3):
        guard.failed(src)
    assert guard.blocked_for(src) == pytest.approx(200)  # doubled
    clock.advance(201)
    for _ in range(3):
        guard.failed(src)
    assert guard.blocked_for(src) == pytest.approx(400)


def test_block_period_is_capped(clock: FakeClock) -> None:
    guard = FraudGuard(
        clock, max_failures=1, block_seconds=100, max_block_seconds=250, failure_window=10
    )
    for expected in (100, 200, 250, 250):
        guard.failed("198.51.100.1")
        assert guard.blocked_for("198.51.100.1") == pytest.approx(expected)
        clock.advance(expected + 1)


def test_failures_outside_the_window_do_not_add_up(clock: FakeClock) -> None:
    guard = FraudGuard(clock, max_failures=3, failure_window=60)
    for _ in range(10):
        guard.failed("203.0.113.5")
        clock.advance(31)  # at most two failures within any 60 s
    assert guard.allow("203.0.113.5")


def test_success_clears_failures(clock: FakeClock) -> None:
    guard = FraudGuard(clock, max_failures=3)
    guard.failed("203.0.113.5")
    guard.failed("203.0.113.5")
    guard.succeeded("203.0.113.5")
    guard.failed("203.0.113.5")
    guard.failed("203.0.113.5")
    assert guard.allow("203.0.113.5")


def test_token_bucket_rate_limit(clock: FakeClock) -> None:
    guard = FraudGuard(clock, rate=10, burst=5)
    src = "[2001:db8::1]:5060"
    assert [guard.allow(src) for _ in range(7)] == [True] * 5 + [False] * 2
    clock.advance(0.1)  # one token back
    assert guard.allow(src) and not guard.allow(src)
    clock.advance(10)  # refills to the burst, not beyond
    assert [guard.allow(src) for _ in range(6)] == [True] * 5 + [False]
    assert guard.allow("[2001:db8::2]:5060")


def test_trusted_trunks_skip_the_rate_limit_but_not_blocks(clock: FakeClock) -> None:
    guard = FraudGuard(clock, rate=1, burst=1, max_failures=1)
    guard.set_trusted({"192.0.2.50": "trunk-1"})
    assert guard.trusted_source("192.0.2.50:5060") == "trunk-1"
    assert guard.trusted_source("192.0.2.50") == "trunk-1"
    assert guard.trusted_source("192.0.2.51:5060") is None
    assert all(guard.allow("192.0.2.50:5060") for _ in range(100))
    guard.failed("192.0.2.50")
    assert not guard.allow("192.0.2.50:5060")


def test_refusals_are_logged_with_the_source(clock: FakeClock) -> None:
    with structlog.testing.capture_logs() as logs:
        # A fresh logger: the module's one may have been cached by an earlier test's
        # logging configuration, out of capture_logs' reach.
        logger = structlog.get_logger("fraud-test")
        guard = FraudGuard(clock, rate=1, burst=1, max_failures=1, logger=logger)
        guard.allow("192.0.2.9:5060")
        guard.allow("192.0.2.9:5060")
        guard.failed("192.0.2.10:5060")
        guard.allow("192.0.2.10:5060")
    events = [(e["event"], e.get("reason"), e["source"]) for e in logs]
    assert events == [
        ("sip_request_refused", "rate_limited", "192.0.2.9:5060"),
        ("sip_source_blocked", "repeated failed authentication", "192.0.2.10:5060"),
        ("sip_request_refused", "blocked", "192.0.2.10:5060"),
    ]
    assert guard.refused == 2


def test_memory_stays_bounded_under_a_flood_of_sources(clock: FakeClock) -> None:
    guard = FraudGuard(clock, max_sources=1000, max_failures=1)
    guard.failed("10.0.0.1")  # blocked: kept
    for i in range(5000):
        guard.allow(f"10.1.{i // 250}.{i % 250}:5060")
    assert len(guard._sources) <= 1000
    assert not guard.allow("10.0.0.1")


def test_source_host() -> None:
    assert source_host("1.2.3.4:5060") == "1.2.3.4"
    assert source_host("[::1]:5060") == "::1"
    assert source_host("::1") == "::1"
    assert source_host("example.net") == "example.net"


def test_secret_box_round_trip_and_tamper_detection() -> None:
    box = SecretBox("k" * 40)
    token = box.encrypt("carrier-pass-ü")
    assert "carrier" not in token and token != box.encrypt("carrier-pass-ü")
    assert box.decrypt(token) == "carrier-pass-ü"
    with pytest.raises(ValueError):
        SecretBox("another key").decrypt(token)
    raw = bytearray(token.encode())
    raw[10] = ord("A") if raw[10] != ord("A") else ord("B")
    with pytest.raises(ValueError):
        box.decrypt(raw.decode())
