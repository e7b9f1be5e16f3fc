"""SIP, SIPS and tel URIs: parsing, raw and decoded forms, and RFC 3261 §19.1.4 comparison."""

from __future__ import annotations

import pytest

from sparklecomm.telephony.sip import AbsoluteUri, SipParseError, SipUri, TelUri, parse_uri


def sip(text: str) -> SipUri:
    uri = parse_uri(text)
    assert isinstance(uri, SipUri)
    return uri


def test_components() -> None:
    uri = sip(
        "sips:alice:secret@atlanta.example.com:5061;transport=tcp;lr;maddr=239.255.255.1"
        "?subject=project%20x&priority=urgent"
    )
    assert uri.secure and uri.scheme == "sips"
    assert (uri.user, uri.password, uri.host, uri.port) == (
        "alice",
        "secret",
        "atlanta.example.com",
        5061,
    )
    assert uri.transport == "tcp"
    assert uri.lr and uri.param("lr") is None
    assert uri.maddr == "239.255.255.1"
    assert uri.header_fields == [("subject", "project x"), ("priority", "urgent")]


def test_str_gives_back_the_text() -> None:
    for text in (
        "sip:alice@atlanta.example.com",
        "sip:+1-212-555-1212:1234@gateway.com;user=phone",
        "sips:1212@gateway.com",
        "sip:alice@192.0.2.4:5060",
        "sip:atlanta.example.com;method=REGISTER?to=alice%40atlanta.example.com",
        "sip:alice;day=tuesday@atlanta.example.com",
        "sip:[2001:db8::10]:5070;transport=udp",
        "sip:%61lice@atlanta.example.com",
    ):
        assert str(sip(text)) == text


def test_scheme_is_case_insensitive() -> None:
    assert sip("SIP:alice@example.com") == sip("sip:alice@example.com")


def test_escapes_keep_raw_and_decoded_forms() -> None:
    uri = sip("sip:sips%3Auser%40example.com@example.net")
    assert uri.user_raw == "sips%3Auser%40example.com"
    assert uri.user == "sips:user@example.com"
    nul = sip("sip:null-%00-null@example.com")
    assert nul.user == "null-\x00-null"
    assert len(nul.user) == 11


def test_unescaping_happens_once() -> None:
    uri = sip("sip:host.example.net;n%61me=v%61lue%25%34%31")
    assert uri.param("name") == "value%41"


def test_ipv6_references() -> None:
    uri = sip("sip:user@[2001:db8::10]:5070")
    assert (uri.host, uri.port) == ("2001:db8::10", 5070)
    assert str(uri) == "sip:user@[2001:db8::10]:5070"
    assert sip("sip:[2001:db8::10:5070]").port is None
    assert sip("sip:[::ffff:192.0.2.2]").host == "::ffff:192.0.2.2"


def test_three_colon_ipv6_is_tolerated_and_equals_the_correct_form() -> None:
    three = sip("sip:user@[2001:db8:::192.0.2.1]")
    two = sip("sip:user@[2001:db8::192.0.2.1]")
    assert three.equivalent(two)
    assert sip("sip:user@[2001:db8::c000:201]").equivalent(two)


@pytest.mark.parametrize(
    "text",
    [
        "sip:2001:db8::10",  # IPv6 without brackets (RFC 5118 §4.2)
        "sip:[2001:db8::10",
        "sip:[2001:db8::zz]",
        "sip:user@",
        "sip:@example.com",
        "sip:example.com:",
        "sip:example.com:65536",
        "sip:example.com:5060x",
        "sip:exa mple.com",
        "sip:example.com;",
        "sip:example.com;a=",
        "sip:example.com;=b",
        "sip:example.com?",
        "sip:example.com?a",
        "sip:user%zz@example.com",
        "sip:-bad-.example.com",
        "sip:example.123",
        "sip:256.1.1.1",
        "<sip:user@example.com>",
        "sip:user@example.com>",
        "nocolon",
        ":missing-scheme",
        "1sip:x",
        "tel:",
        "tel:+",
        "tel:1234",  # a local number needs phone-context
        "tel:+1234;",
        "http:",
        "http:<x>",
    ],
)
def test_invalid_uris_raise_parse_errors(text: str) -> None:
    with pytest.raises(SipParseError) as caught:
        parse_uri(text, "Request-URI")
    assert caught.value.reason == "Bad Request - Malformed Request-URI"
    assert caught.value.status_code == 400


def test_tel_uris() -> None:
    uri = parse_uri("tel:+1-201-555-0123;ext=1234")
    assert isinstance(uri, TelUri)
    assert uri.is_global and uri.digits == "+12015550123"
    assert uri.param("ext") == "1234"
    assert str(uri) == "tel:+1-201-555-0123;ext=1234"
    local = parse_uri("tel:7042;phone-context=example.com")
    assert isinstance(local, TelUri) and local.phone_context == "example.com"
    assert uri.equivalent(parse_uri("tel:+1.201.555.0123;EXT=1234"))
    assert not uri.equivalent(parse_uri("tel:+1-201-555-0123"))
    assert not uri.equivalent(local)


def test_other_schemes_are_opaque() -> None:
    uri = parse_uri("urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6")
    assert uri == AbsoluteUri("urn", "uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6")
    assert str(uri) == "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"
    assert uri.equivalent(parse_uri("URN:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"))
    assert not uri.equivalent(sip("sip:x@example.com"))


def test_sip_uri_parse_rejects_other_schemes() -> None:
    with pytest.raises(SipParseError):
        SipUri.parse("tel:+123")


def test_build_escapes_decoded_values() -> None:
    uri = SipUri.build("example.com", user="I have spaces", params=[("transport", "tcp")])
    assert str(uri) == "sip:I%20have%20spaces@example.com;transport=tcp"
    assert sip(str(uri)) == uri
    assert uri.user == "I have spaces"
    ipv6 = SipUri.build("[2001:db8::1]", port=5060)
    assert str(ipv6) == "sip:[2001:db8::1]:5060"


def test_with_and_without_params() -> None:
    uri = sip("sip:example.com;transport=udp")
    assert str(uri.with_param("transport", "tcp")) == "sip:example.com;transport=tcp"
    assert str(uri.with_param("lr")) == "sip:example.com;transport=udp;lr"
    assert str(uri.without_param("TRANSPORT")) == "sip:example.com"


# RFC 3261 §19.1.4: "The URIs within each of the following sets are equivalent".
EQUIVALENT = [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
    (
        "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
        "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
    ),
    (
        "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
    ),
]

# "The URIs within each of the following sets are not equivalent".
NOT_EQUIVALENT = [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
    # and a few more from the rules themselves
    ("sip:alice@atlanta.com", "sips:alice@atlanta.com"),
    ("sip:alice@atlanta.com", "sip:atlanta.com"),
    ("sip:alice:pw@atlanta.com", "sip:alice@atlanta.com"),
    ("sip:a%3Bb@atlanta.com", "sip:a;b@atlanta.com"),  # ";" is reserved: escaping matters
    ("sip:alice@atlanta.com;maddr=1.2.3.4", "sip:alice@atlanta.com"),
    ("sip:alice@atlanta.com;user=phone", "sip:alice@atlanta.com"),
    ("sip:alice@atlanta.com;ttl=1", "sip:alice@atlanta.com"),
    ("sip:alice@atlanta.com;method=INVITE", "sip:alice@atlanta.com"),
]


@pytest.mark.parametrize(("left", "right"), EQUIVALENT)
def test_rfc3261_equivalent_uris(left: str, right: str) -> None:
    assert sip(left).equivalent(sip(right))
    assert sip(right).equivalent(sip(left))


@pytest.mark.parametrize(("left", "right"), NOT_EQUIVALENT)
def test_rfc3261_different_uris(left: str, right: str) -> None:
    assert not sip(left).equivalent(sip(right))
    assert not sip(right).equivalent(sip(left))


def test_equivalence_is_intransitive() -> None:
    plain = sip("sip:carol@chicago.com")
    on = sip("sip:carol@chicago.com;security=on")
    off = sip("sip:carol@chicago.com;security=off")
    assert plain.equivalent(on) and plain.equivalent(off)
    assert not on.equivalent(off)


def test_escaped_and_unescaped_forms_compare_equal() -> None:
    # RFC 4475 §3.1.1.3 (esc01): %HH is equivalent to the character it encodes.
    assert sip("sip:%75se%72@example.com").equivalent(sip("sip:user@example.com"))
    assert sip("sip:user@example.com;%6C%72").equivalent(sip("sip:user@example.com;lr"))
    assert sip("sip:%00@host5.example.com") != sip("sip:%00%00@host5.example.com")


def test_plain_equality_is_structural_and_hashable() -> None:
    assert sip("sip:%61lice@a.com") != sip("sip:alice@a.com")
    assert len({sip("sip:a@b.com"), sip("sip:a@b.com")}) == 1
