"""The dial plan as a pure function: configuration snapshot + call request → route."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from sparklecomm.telephony.pbx.dialplan import (
    MAX_FORWARD_DEPTH,
    CallSettings,
    Destination,
    DialRule,
    DidConfig,
    FollowMeStep,
    PbxConfig,
    RingGroupConfig,
    TrunkConfig,
    caller_is_blocked,
    decide,
    divert,
    match_rule,
)
from sparklecomm.telephony.pbx.routes import (
    CallRequest,
    Hunt,
    HuntStep,
    Reject,
    Target,
    ToQueue,
    ToVoicemail,
)

T = "tenant-a"
TRUNK = TrunkConfig("trunk-1", "carrier", caller_id=None)


def config(**changes: object) -> PbxConfig:
    base = PbxConfig(
        tenant_id=T,
        extensions={"1001": "Ana", "1002": "Ben", "1003": "Cleo", "1004": "Dan"},
        dids={
            "+4930100": DidConfig("+4930100", Destination("queue", "support"), {"campaign": "x"}),
            "+4930101": DidConfig("+4930101", Destination("extension", "1002")),
            "+4930102": DidConfig("+4930102", Destination("ring_group", "sales")),
            "+4930103": DidConfig("+4930103", Destination("reject")),
        },
        ring_groups={
            "sales": RingGroupConfig(
                "sales", ("1002", "1003"), "simultaneous", 15.0, Destination("extension", "1004")
            )
        },
        trunks={TRUNK.id: TRUNK},
        dial_rules=(
            DialRule("+49", "allow", TRUNK.id, name="germany"),
            DialRule("0", "allow", TRUNK.id, strip=1, prepend="+49", name="national"),
            DialRule("+", "deny", name="international"),
            DialRule("112", "allow", TRUNK.id, emergency=True, name="emergency"),
            DialRule("+49900", "deny", name="premium"),
        ),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def from_ext(dialled: str, ext: str = "1001", **kw: object) -> CallRequest:
    return CallRequest(
        dialled=dialled,
        caller=ext,
        caller_name=None,
        source="127.0.0.1:5070",
        extension=ext,
        tenant_id=kw.pop("tenant_id", T),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def from_trunk(dialled: str, caller: str = "+4917612345", trunk: str = TRUNK.id) -> CallRequest:
    return CallRequest(
        dialled=dialled,
        caller=caller,
        caller_name=None,
        source="127.0.0.2:5060",
        trunk_id=trunk,
        tenant_id=T,
    )


def exts(step: HuntStep) -> list[str | None]:
    return [t.extension or t.external for t in step.targets]


def plan(route: object) -> list[list[str | None]]:
    assert isinstance(route, Hunt), route
    return [exts(s) for s in route.steps]


# -- internal calls --------------------------------------------------------------------------
def test_extension_to_extension_rings_it() -> None:
    route = decide(config(), from_ext("1002"))
    assert isinstance(route, Hunt)
    assert route.tenant_id == T
    assert route.steps == (HuntStep((Target(extension="1002"),), 20.0),)
    assert route.final == Reject(480, "Temporarily Unavailable")


def test_dnd_without_forward_gets_busy_and_with_busy_forward_goes_there() -> None:
    cfg = config(settings={"1002": CallSettings(dnd=True)})
    route = decide(cfg, from_ext("1002"))
    assert isinstance(route, Reject) and route.status == 486
    cfg = config(settings={"1002": CallSettings(dnd=True, forward_busy="1003")})
    assert plan(decide(cfg, from_ext("1002"))) == [["1003"]]


def test_unconditional_forward_replaces_the_extension() -> None:
    cfg = config(settings={"1002": CallSettings(forward_always="1003")})
    assert plan(decide(cfg, from_ext("1002"))) == [["1003"]]
    # ... and follows the target's own settings (1003 forwards on no answer to 1004)
    cfg = config(
        settings={
            "1002": CallSettings(forward_always="1003"),
            "1003": CallSettings(forward_no_answer="1004", ring_seconds=10),
        }
    )
    route = decide(cfg, from_ext("1002"))
    assert plan(route) == [["1003"], ["1004"]]
    assert isinstance(route, Hunt) and route.steps[0].ring_seconds == 10


def test_busy_and_no_answer_forwards_are_extra_steps_with_conditions() -> None:
    cfg = config(settings={"1002": CallSettings(forward_no_answer="1003", ring_seconds=12)})
    route = decide(cfg, from_ext("1002"))
    assert isinstance(route, Hunt)
    assert plan(route) == [["1002"], ["1003"]]
    assert route.steps[0].ring_seconds == 12 and route.steps[1].when == "always"
    cfg = config(settings={"1002": CallSettings(forward_no_answer="1003", forward_busy="1004")})
    route = decide(cfg, from_ext("1002"))
    assert isinstance(route, Hunt)
    assert plan(route) == [["1002"], ["1003"], ["1004"]]
    assert [s.when for s in route.steps] == ["always", "no_answer", "busy"]


def test_a_forward_targets_follow_me_is_part_of_the_same_alternative() -> None:
    """1002 forwards to 1003 on no answer and to 1004 when busy; 1003 has a follow-me to a
    mobile. The mobile belongs to the no-answer branch: a busy 1002 must not ring it."""
    cfg = config(
        settings={
            "1002": CallSettings(forward_no_answer="1003", forward_busy="1004"),
            "1003": CallSettings(follow_me=(FollowMeStep(("+4917699999",), 25),)),
        }
    )
    route = decide(cfg, from_ext("1002"))
    assert isinstance(route, Hunt)
    assert plan(route) == [["1002"], ["1003"], ["+4917699999"], ["1004"]]
    assert [s.when for s in route.steps] == ["always", "no_answer", "no_answer", "busy"]


def test_follow_me_sequence_with_external_number_then_480() -> None:
    cfg = config(
        settings={
            "1002": CallSettings(
                ring_seconds=10,
                follow_me=(
                    FollowMeStep(("1003",), 15),
                    FollowMeStep(("+4917699999",), 25),
                ),
            )
        }
    )
    route = decide(cfg, from_ext("1002"))
    assert isinstance(route, Hunt)
    assert plan(route) == [["1002"], ["1003"], ["+4917699999"]]
    assert [s.ring_seconds for s in route.steps] == [10, 15, 25]
    mobile = route.steps[2].targets[0]
    assert mobile.trunk_id == TRUNK.id
    assert route.final == Reject(480, "Temporarily Unavailable")


def test_follow_me_to_a_forbidden_number_is_dropped() -> None:
    cfg = config(settings={"1002": CallSettings(follow_me=(FollowMeStep(("+19005550000",), 20),))})
    route = decide(cfg, from_ext("1002"))
    assert plan(route) == [["1002"]]
    assert isinstance(route, Hunt) and "refused" in route.description


def test_forwarding_loops_are_cut_off() -> None:
    cfg = config(
        settings={
            "1002": CallSettings(forward_always="1003"),
            "1003": CallSettings(forward_always="1002"),
        }
    )
    route = decide(cfg, from_ext("1002"))
    assert isinstance(route, Reject) and route.status == 480
    # forwarding back to the caller is cut too
    cfg = config(settings={"1002": CallSettings(forward_no_answer="1001")})
    assert plan(decide(cfg, from_ext("1002"))) == [["1002"]]


def test_long_forward_chains_stop_at_the_depth_limit() -> None:
    numbers = [str(2000 + i) for i in range(MAX_FORWARD_DEPTH + 5)]
    cfg = config(
        extensions={"1001": "Ana", **{n: n for n in numbers}},
        settings={a: CallSettings(forward_no_answer=b) for a, b in itertools.pairwise(numbers)},
    )
    route = decide(cfg, from_ext(numbers[0]))
    steps = plan(route)
    assert steps[0] == [numbers[0]]
    assert len(steps) == MAX_FORWARD_DEPTH + 1


def test_ring_groups_simultaneous_sequential_and_fallback() -> None:
    route = decide(config(), from_ext("+4930102"))
    assert isinstance(route, Hunt)
    assert plan(route) == [["1002", "1003"], ["1004"]]
    assert route.steps[0].ring_seconds == 15.0
    seq = RingGroupConfig("sales", ("1002", "1003"), "sequential", 10.0, Destination("reject"))
    cfg = config(ring_groups={"sales": seq}, settings={"1003": CallSettings(dnd=True)})
    route = decide(cfg, from_ext("+4930102"))
    assert plan(route) == [["1002"]]  # 1003 is in DND
    assert isinstance(route, Hunt) and route.final.status == 480
    seq2 = replace(seq, members=("1002", "1003", "1004"))
    assert plan(decide(config(ring_groups={"sales": seq2}), from_ext("+4930102"))) == [
        ["1002"],
        ["1003"],
        ["1004"],
    ]


def test_ring_group_fallback_loop_between_groups_is_cut() -> None:
    a = RingGroupConfig("a", ("1002",), "simultaneous", 10.0, Destination("ring_group", "b"))
    b = RingGroupConfig("b", ("1003",), "simultaneous", 10.0, Destination("ring_group", "a"))
    did = {"+4930102": DidConfig("+4930102", Destination("ring_group", "a"))}
    route = decide(config(ring_groups={"a": a, "b": b}, dids=did), from_ext("+4930102"))
    assert plan(route) == [["1002"], ["1003"]]


def test_calling_yourself_is_busy() -> None:
    route = decide(config(), from_ext("1001"))
    assert isinstance(route, Reject) and route.status == 486


# -- DIDs ------------------------------------------------------------------------------------
def test_did_to_queue_from_a_trunk_carries_dnis_ani_and_did_attributes() -> None:
    route = decide(config(), from_trunk("+4930100", caller="+4917612345"))
    assert route == ToQueue(
        tenant_id=T,
        queue_id="support",
        attributes={"campaign": "x", "dnis": "+4930100", "ani": "+4917612345"},
    )
    # carriers often send the number without '+'
    route = decide(config(), from_trunk("4930100"))
    assert isinstance(route, ToQueue) and route.attributes["dnis"] == "+4930100"


def test_did_destinations_extension_ring_group_reject() -> None:
    assert plan(decide(config(), from_trunk("+4930101"))) == [["1002"]]
    assert plan(decide(config(), from_trunk("+4930102"))) == [["1002", "1003"], ["1004"]]
    route = decide(config(), from_trunk("+4930103"))
    assert isinstance(route, Reject) and route.status == 603


def test_trunk_call_to_an_unknown_number_is_404_and_never_reaches_extensions() -> None:
    route = decide(config(), from_trunk("+4930999"))
    assert isinstance(route, Reject) and route.status == 404
    route = decide(config(), from_trunk("1002"))  # extensions are not dialable from outside
    assert isinstance(route, Reject) and route.status == 404


def test_internal_call_to_own_did_goes_to_its_destination() -> None:
    route = decide(config(), from_ext("+4930100"))
    assert isinstance(route, ToQueue) and route.attributes["ani"] == "1001"


def test_blocked_callers_get_403() -> None:
    cfg = config(blocked=("+4917612345", "+1900*", "anonymous"))
    for caller in ("+4917612345", "4917612345", "+19005551234", "anonymous", ""):
        route = decide(cfg, from_trunk("+4930100", caller=caller))
        assert isinstance(route, Reject) and route.status == 403, caller
    assert isinstance(decide(cfg, from_trunk("+4930100", caller="+4917600000")), ToQueue)


def test_caller_patterns() -> None:
    assert caller_is_blocked(("+49176*",), "0049176") is False
    assert caller_is_blocked(("+49176*",), "49176123")
    assert not caller_is_blocked(("anonymous",), "+4930")


# -- outbound and toll fraud -----------------------------------------------------------------
def test_outbound_through_a_rule_uses_the_trunk_and_the_default_caller_id() -> None:
    cfg = config(default_caller_id="+4930100")
    route = decide(cfg, from_ext("+4930555666"))
    assert isinstance(route, Hunt)
    (target,) = route.steps[0].targets
    assert target == Target(
        external="+4930555666", trunk_id=TRUNK.id, caller_id="+4930100", caller_name="Ana"
    )
    # the trunk's own caller id wins
    trunk = replace(TRUNK, caller_id="+4930199")
    route = decide(replace(cfg, trunks={TRUNK.id: trunk}), from_ext("+4930555666"))
    assert isinstance(route, Hunt) and route.steps[0].targets[0].caller_id == "+4930199"


def test_strip_and_prepend() -> None:
    route = decide(config(), from_ext("030555666"))
    assert isinstance(route, Hunt) and route.steps[0].targets[0].external == "+4930555666"


@pytest.mark.parametrize("number", ["+19005550000", "+4990012345", "+447911123456"])
def test_denied_prefixes_win(number: str) -> None:
    route = decide(config(), from_ext(number))
    assert route == Reject(403, "Outbound calls to this number are not allowed")


def test_emergency_number_is_allowed_exactly() -> None:
    route = decide(config(), from_ext("112"))
    assert isinstance(route, Hunt) and route.steps[0].targets[0].external == "112"
    route = decide(config(), from_ext("1120"))
    assert isinstance(route, Reject) and route.status == 403


def test_external_calls_denied_by_default() -> None:
    route = decide(config(dial_rules=()), from_ext("+4930555666"))
    assert route == Reject(403, "Outbound calls to this number are not allowed")


def test_rule_whose_trunk_is_gone_is_503() -> None:
    route = decide(config(trunks={}), from_ext("+4930555666"))
    assert isinstance(route, Reject) and route.status == 503


def test_unauthenticated_requests_are_refused() -> None:
    anonymous = CallRequest(dialled="+4930555666", caller="1001", caller_name=None, source="x")
    assert decide(config(), anonymous) == Reject(403, "Forbidden (authentication required)")
    # an unknown extension (e.g. of another tenant) is not this tenant's caller
    route = decide(config(), from_ext("1002", ext="9999"))
    assert isinstance(route, Reject) and route.status == 403


def test_cross_tenant_isolation() -> None:
    other = config(tenant_id="tenant-b", extensions={"2001": "Zoe"}, dids={}, ring_groups={})
    # a tenant-a request against tenant-b's plan is refused outright
    route = decide(other, from_ext("2001"))
    assert isinstance(route, Reject) and route.status == 403
    # tenant-a's extension dialling tenant-b's extension number: not an extension here, so
    # it is an outbound number; our rules do not allow it
    route = decide(config(), from_ext("2001"))
    assert isinstance(route, Reject) and route.status == 403
    # a trunk unknown to this tenant
    route = decide(config(), from_trunk("+4930100", trunk="trunk-of-b"))
    assert isinstance(route, Reject) and route.status == 403


def test_longest_prefix_wins_and_deny_wins_ties() -> None:
    rules = (
        DialRule("+4", "allow", "t"),
        DialRule("+49", "deny"),
        DialRule("+49", "allow", "t"),
    )
    rule = match_rule(rules, "+4930")
    assert rule is not None and rule.action == "deny"
    rule = match_rule(rules, "+43")
    assert rule is not None and rule.action == "allow"
    assert match_rule(rules, "0049") is None


# -- a queue diverting its waiting caller (divert_to) ----------------------------------------
def test_divert_to_an_extension_follows_its_settings() -> None:
    route = divert(config(), "extension:1002", from_trunk("+4930100"))
    assert plan(route) == [["1002"]]
    assert isinstance(route, Hunt) and route.description == "diverted to extension:1002"
    forwarded = config(settings={"1002": CallSettings(forward_always="1003")})
    assert plan(divert(forwarded, "extension:1002", from_trunk("+4930100"))) == [["1003"]]
    dnd = config(settings={"1002": CallSettings(dnd=True)})
    assert divert(dnd, "extension:1002", from_trunk("+4930100")) == Reject(
        486, "Busy Here (do not disturb)"
    )
    missing = divert(config(), "extension:1999", from_trunk("+4930100"))
    assert isinstance(missing, Reject) and missing.status == 404 and "1999" in missing.reason


def test_divert_to_a_ring_group_rings_it_then_its_fallback() -> None:
    route = divert(config(), "ring_group:sales", from_trunk("+4930100"))
    assert plan(route) == [["1002", "1003"], ["1004"]]
    missing = divert(config(), "ring_group:nope", from_trunk("+4930100"))
    assert isinstance(missing, Reject) and missing.status == 404


def test_divert_to_a_number_an_extension_a_did_or_outside_by_the_dial_rules() -> None:
    request = from_trunk("+4930100", caller="+4917612345")
    assert plan(divert(config(), "number:1003", request)) == [["1003"]]
    assert plan(divert(config(), "1003", request)) == [["1003"]]  # bare number
    other_queue = divert(config(), "+4930100", request)
    assert other_queue == ToQueue(
        T, "support", {"campaign": "x", "dnis": "+4930100", "ani": "+4917612345"}
    )
    outside = divert(config(default_caller_id="+4930100"), "number:0301234", request)
    assert isinstance(outside, Hunt)
    assert outside.steps[0].targets == (
        Target(external="+49301234", trunk_id=TRUNK.id, caller_id="+4930100"),
    )
    # the queue has the organisation's rights, no more: denied numbers stay denied
    assert divert(config(), "+49900123", request).status == 403  # type: ignore[union-attr]
    assert divert(config(), "+33123456", request).status == 403  # type: ignore[union-attr]
    assert divert(config(), "number:not-a-number", request).status == 404  # type: ignore[union-attr]


def test_divert_to_voicemail_takes_a_message_an_unknown_box_or_kind_releases_the_caller() -> None:
    request = from_trunk("+4930100")
    voicemail = divert(config(), "voicemail:1002", request)
    assert isinstance(voicemail, ToVoicemail) and voicemail.box == "1002"
    assert voicemail.tenant_id == T and voicemail.max_seconds == 120
    nobody = divert(config(), "voicemail:support", request)
    assert isinstance(nobody, Reject) and nobody.status == 404
    assert "no voicemail box support" in nobody.reason
    unknown = divert(config(), "busy-tone:x", request)
    assert isinstance(unknown, Reject) and unknown.status == 480 and "busy-tone" in unknown.reason
