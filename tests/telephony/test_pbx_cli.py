"""``sparklecomm did|trunk|ringgroup|block|dialrule`` and ``extension forward|dnd``, run
in-process against a temporary data directory (SQLite)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sparklecomm.cli import _overrides, _services, app

runner = CliRunner()


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SPARKLECOMM_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("SPARKLECOMM_DATABASE_URL", raising=False)
    monkeypatch.setenv("SPARKLECOMM_SIP_ENABLED", "false")
    _overrides.clear()
    return tmp_path


def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


def ok(*args: str, input: str | None = None) -> str:
    code, out, err = run(*args, input=input)
    assert code == 0, (args, out, err)
    return out


@pytest.fixture
def tenant() -> str:
    ok("tenant", "add", "acme", "--name", "Acme")
    for number in ("1001", "1002", "1003"):
        ok("extension", "add", number, "--tenant", "acme", "--password", "phone-secret-1")
    # The routing queue a DID names must exist (queues are made through the routing API).
    services = _services()
    tenant_id = services.auth.tenant_by_slug("acme").tenant_id
    services.extra["acd"].execute(tenant_id, "add_queue", config={"id": "support"})
    services.db.dispose()
    return "acme"


def test_did_add_list_remove(tenant: str) -> None:
    out = ok("did", "add", "+49 30 100", "--to", "queue:support", "--attr", "campaign=spring",
             "--tenant", tenant, "--json")  # fmt: skip
    created = json.loads(out)
    assert created["number"] == "+4930100" and created["attributes"] == {"campaign": "spring"}
    ok("did", "add", "+4930101", "--to", "extension:1001", "--tenant", tenant)
    out = ok("did", "list", "--tenant", tenant)
    assert "+4930100" in out and "queue:support" in out and "extension:1001" in out
    rows = json.loads(ok("did", "list", "--tenant", tenant, "--json"))
    assert [r["number"] for r in rows] == ["+4930100", "+4930101"]
    assert "removed" in ok("did", "remove", "+4930100", "--tenant", tenant)
    code, _, err = run("did", "remove", "+4930100", "--tenant", tenant)
    assert code == 1 and "no DID +4930100" in err


def test_bad_input_names_the_value_and_exits_2(tenant: str) -> None:
    cases = [
        (("did", "add", "abc", "--to", "reject"), "number", "'abc'"),
        (("did", "add", "+4930100", "--to", "mars:1"), "destination", "'mars:1'"),
        (("did", "add", "+4930100", "--to", "extension:4711"), "destination", "4711"),
        (("did", "add", "+4930100", "--to", "queue:nosuch"), "destination", "'nosuch'"),
        (("did", "add", "+4930100", "--to", "reject", "--attr", "oops"), "attr", "'oops'"),
        (("trunk", "add", "c", "--host", "bad host!"), "host", "'bad host!'"),
        (("trunk", "add", "c", "--host", "h", "--allow-ip", "1.2.3"), "allowed_sources", "1.2.3"),
        (("trunk", "add", "c", "--host", "h", "--transport", "SCTP"), "transport", "UDP"),
        (("ringgroup", "add", "g", "--member", "4711"), "members", "4711"),
        (("ringgroup", "add", "g", "--member", "1001", "--mode", "x"), "mode", "simultaneous"),
        (("block", "add", "call-me"), "pattern", "'call-me'"),
        (("extension", "dnd", "1001", "maybe"), "state", "'maybe'"),
        (("extension", "forward", "1001", "--always", "what?"), "forward_always", "'what?'"),
        (("extension", "forward", "1001"), "always", "--always"),
        (("dialrule", "add", "r", "--prefix", "+49", "--trunk", "nope"), "trunk", "'nope'"),
    ]
    for args, field, value in cases:
        code, out, err = (
            run(*args, "--tenant", tenant) if args[0] not in ("extension",) else run(*args)
        )
        assert code == 2, (args, out, err)
        assert err.startswith(f"error: {field}: ") and value in err, (args, err)


def test_trunk_ringgroup_block_dialrule(tenant: str, data_dir: Path) -> None:
    out = ok("trunk", "add", "carrier", "--host", "sip.example.net", "--username", "acme",
             "--password-stdin", "--register", "--allow-ip", "192.0.2.10", "--caller-id",
             "+4930100", "--tenant", tenant, "--json", input="trunk-pass-123\n")  # fmt: skip
    trunk = json.loads(out)
    assert trunk["password_set"] and trunk["register"] and "password" not in trunk
    listed = ok("trunk", "list", "--tenant", tenant)
    assert "carrier" in listed and "192.0.2.10" in listed and "trunk-pass" not in listed
    assert b"trunk-pass-123" not in (data_dir / "sparklecomm.db").read_bytes()

    ok("ringgroup", "add", "sales", "--member", "1001", "--member", "1002", "--mode",
       "sequential", "--fallback", "extension:1003", "--tenant", tenant)  # fmt: skip
    rows = json.loads(ok("ringgroup", "list", "--tenant", tenant, "--json"))
    assert rows[0]["members"] == ["1001", "1002"] and rows[0]["fallback"] == "extension:1003"
    code, _, err = run("ringgroup", "add", "sales", "--member", "1001", "--tenant", tenant)
    assert code == 1 and "exists already" in err

    ok("block", "add", "+1900*", "--note", "premium", "--tenant", tenant)
    ok("block", "add", "anonymous", "--tenant", tenant)
    blocked = json.loads(ok("block", "list", "--tenant", tenant, "--json"))
    assert [r["pattern"] for r in blocked] == ["+1900*", "anonymous"]
    ok("block", "remove", "anonymous", "--tenant", tenant)

    ok("dialrule", "add", "de", "--prefix", "+49", "--trunk", "carrier", "--tenant", tenant)
    ok("dialrule", "add", "sos", "--prefix", "112", "--trunk", "carrier", "--emergency",
       "--tenant", tenant)  # fmt: skip
    out = ok("dialrule", "list", "--tenant", tenant)
    assert "de" in out and "sos" in out and "carrier" in out
    code, _, err = run("trunk", "remove", "carrier", "--tenant", tenant)
    assert code == 1 and "uses trunk" in err
    ok("dialrule", "remove", "de", "--tenant", tenant)
    ok("dialrule", "remove", "sos", "--tenant", tenant)
    ok("trunk", "remove", "carrier", "--tenant", tenant)
    ok("ringgroup", "remove", "sales", "--tenant", tenant)
    assert json.loads(ok("ringgroup", "list", "--tenant", tenant, "--json")) == []


def test_extension_forward_and_dnd(tenant: str) -> None:
    out = ok("extension", "forward", "1001", "--no-answer", "1002", "--busy", "1003",
             "--ring-seconds", "15", "--json")  # fmt: skip
    data = json.loads(out)
    assert data["forward_no_answer"] == "1002" and data["forward_busy"] == "1003"
    assert data["ring_seconds"] == 15
    assert "no answer→1002" in ok("extension", "forward", "1001", "--always", "1003")
    data = json.loads(ok("extension", "forward", "1001", "--off", "--json"))
    assert data["forward_always"] is None and data["forward_no_answer"] is None
    assert "do-not-disturb on" in ok("extension", "dnd", "1001", "on")
    assert json.loads(ok("extension", "dnd", "1001", "off", "--json"))["dnd"] is False
    code, _, err = run("extension", "dnd", "4711", "on")
    assert code == 1 and "no extension 4711" in err
    assert "auto-answer on" in ok("extension", "auto-answer", "1001", "on")
    data = json.loads(ok("extension", "auto-answer", "1001", "off", "--json"))
    assert data["auto_answer"] is False and data["dnd"] is False
    code, _, err = run("extension", "auto-answer", "1001", "always")
    assert code == 2 and "state" in err
    code, out, _ = run("extension", "--help")
    assert "forward" in out and "dnd" in out and "auto-answer" in out
