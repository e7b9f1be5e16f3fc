"""Agent desktop and wallboard end to end: real server, real Chromium, real WebSocket."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, expect
from tests.browser.conftest import ADMIN_PASSWORD, LiveServer, screenshot
from tests.browser.test_accessibility import static_problems
from tests.browser.test_web_shell import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]


class Client:
    """The REST API as one user (bearer token), for arranging what the pages then show."""

    def __init__(self, url: str, username: str) -> None:
        self.http = httpx.Client(base_url=f"{url}/api/v1", timeout=10)
        r = self.http.post("/auth/login", json={"username": username, "password": ADMIN_PASSWORD})
        r.raise_for_status()
        token = self.http.post(
            "/tokens",
            json={"name": "browser-test"},
            headers={"X-CSRF-Token": r.json()["csrf_token"]},
        ).json()["token"]
        self.http.cookies.clear()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def call(
        self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 201, 204)
    ) -> Any:
        r = self.http.request(method, path, json=body)
        assert r.status_code in ok, r.text
        return r.json() if r.content else None


@pytest.fixture(scope="module")
def center(live_server: LiveServer) -> Iterator[dict[str, Any]]:
    admin = Client(live_server.url, "admin")
    sup = Client(live_server.url, "supervisor")
    users = {u["username"]: u for u in admin.call("GET", "/users")}
    agent_id = users["agent"]["id"]
    admin.call(
        "PUT",
        f"/agents/{agent_id}",
        {"skills": {"billing": 4}, "capacity": {"voice": 1, "chat": 3}},
    )
    admin.call(
        "POST",
        "/queues",
        {
            "id": "support",
            "name": "Support",
            "wrapup_seconds": 120,
            "offer_timeout_seconds": 60,
            "members": [{"agent_id": agent_id}],
        },
    )
    admin.call(
        "POST",
        "/customers",
        {
            "id": "c-100",
            "name": "Lena Ruiz",
            "phone": "+15550142",
            "vip_tier": "gold",
            "attributes": {"plan": "Pro"},
        },
    )
    yield {"admin": admin, "sup": sup, "agent_id": agent_id}


def open_as(browser: Browser, live_server: LiveServer, username: str, path: str) -> Page:
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1366, "height": 820})
    page = context.new_page()
    page.set_default_timeout(10_000)
    sign_in(page, username)
    page.goto(path)
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    return page


def test_agent_handles_an_interaction_and_the_wallboard_follows(
    browser: Browser, live_server: LiveServer, center: dict[str, Any]
) -> None:
    agent = open_as(browser, live_server, "agent", "/agent")
    board = open_as(browser, live_server, "supervisor", "/wallboard")
    expect(agent.locator("#desk")).to_have_attribute("data-ready", "true")
    waiting = board.get_by_test_id("queue-support").locator("[data-field='waiting']")
    expect(waiting).to_have_text("0")

    # log in, take a break, go ready again (the time in state restarts each time)
    agent.get_by_role("button", name="Log in").click()
    state = agent.get_by_test_id("agent-state")
    expect(state).to_have_text("Ready")
    agent.get_by_label("Break reason").select_option("coffee")
    agent.get_by_role("button", name="Take break").click()
    expect(state).to_have_text("Break · coffee")

    # a customer calls while the agent is away: the wallboard counts the caller within 1 s
    created = center["sup"].call(
        "POST",
        "/interactions",
        {
            "queue_id": "support",
            "channel": "voice",
            "customer_id": "c-100",
            "attributes": {"dnis": "+18005550100", "ani": "+15550142"},
        },
    )
    iid = created["interaction"]["interaction_id"]
    t0 = time.monotonic()
    expect(waiting).to_have_text("1", timeout=1000)
    assert time.monotonic() - t0 < 1.0

    # ready (keyboard shortcut): the offer pops with the customer's record and a countdown
    agent.keyboard.press("Alt+y")
    offer = agent.get_by_test_id("offer")
    expect(offer).to_be_visible()
    expect(offer.get_by_test_id("customer-name")).to_contain_text("Lena Ruiz")
    expect(offer.get_by_test_id("customer-name")).to_contain_text("VIP gold")
    expect(offer.get_by_test_id("dnis")).to_have_text("+18005550100")
    # a call: the phone rings, with who calls (ANI) and the number dialled (DNIS)
    expect(offer).to_have_attribute("data-channel", "voice")
    ringing = offer.get_by_test_id("ringing")
    expect(ringing).to_contain_text("Incoming call")  # no phone call behind it: Accept takes it
    expect(ringing.get_by_test_id("ani")).to_have_text("+15550142")
    expect(ringing.get_by_test_id("offer-dnis")).to_have_text("+18005550100")
    expect(offer.get_by_test_id("offer-countdown")).to_have_text(re.compile(r"^\d+ s$"))
    countdown = int(offer.get_by_test_id("offer-countdown").inner_text().split()[0])
    assert 50 <= countdown <= 60
    expect(state).to_have_text("Offered")
    assert static_problems(agent) == []  # labels and contrast with the offer open, too
    screenshot(agent, "agent-desktop-offer")

    # a reload does not restart the countdown: it runs on the offer's expiry (server time)
    time.sleep(2.2)
    agent.reload()
    expect(agent.locator("#desk")).to_have_attribute("data-ready", "true")
    offer = agent.get_by_test_id("offer")
    expect(offer.get_by_test_id("offer-countdown")).to_have_text(re.compile(r"^\d+ s$"))
    after = int(offer.get_by_test_id("offer-countdown").inner_text().split()[0])
    assert after <= countdown - 2, (countdown, after)
    expect(offer.get_by_test_id("ringing")).to_be_visible()

    offer.get_by_role("button", name="Accept").click()
    card = agent.get_by_test_id("interaction")
    expect(card).to_be_visible()
    expect(state).to_have_text("Busy")
    expect(waiting).to_have_text("0", timeout=1000)

    # the talk timer survives a reload too (it runs from the acceptance's server time)
    time.sleep(2.2)
    agent.reload()
    expect(agent.locator("#desk")).to_have_attribute("data-ready", "true")
    card = agent.get_by_test_id("interaction")
    expect(card.get_by_test_id("talk-timer")).to_have_text(re.compile(r"^00:0[2-9]$"))
    expect(agent.locator("#state-timer")).not_to_have_text("00:00")

    card.get_by_label("Note").fill("Wants to upgrade to the yearly plan")
    card.get_by_role("button", name="Add note").click()
    expect(card.get_by_test_id("notes")).to_contain_text("yearly plan")
    card.get_by_label("Disposition").select_option("sale")
    assert static_problems(agent) == []
    assert static_problems(board) == []
    screenshot(agent, "agent-desktop-interaction")
    screenshot(board, "wallboard")
    card.get_by_role("button", name="Complete").click()

    wrap = agent.get_by_test_id("wrapup")
    expect(wrap).to_be_visible()
    expect(state).to_have_text("Wrap-up")
    expect(wrap.get_by_test_id("wrapup-timer")).to_contain_text("left")
    wrap.get_by_label("Wrap-up notes").fill("Sent the yearly offer by e-mail")
    assert static_problems(agent) == []
    screenshot(agent, "agent-desktop-wrapup")
    wrap.get_by_role("button", name="End wrap-up").click()
    expect(state).to_have_text("Ready")
    expect(agent.get_by_test_id("today-handled")).to_have_text("1")

    # the interaction's story is complete in the stream and in the notes
    events = center["sup"].call("GET", "/events?after=0&limit=1000")["events"]
    kinds = [e["type"] for e in events if e["payload"].get("interaction_id") == iid]
    for kind in (
        "interaction.offered",
        "interaction.accepted",
        "interaction.completed",
        "interaction.wrapup_ended",
    ):
        assert kind in kinds
    completed = next(
        e
        for e in events
        if e["type"] == "interaction.completed" and e["payload"]["interaction_id"] == iid
    )
    assert completed["payload"]["disposition"] == "sale"
    notes = center["sup"].call("GET", f"/interactions/{iid}/notes")
    assert [n["text"] for n in notes if n["text"]] == [
        "Wants to upgrade to the yearly plan",
        "Sent the yearly offer by e-mail",
    ]

    # the supervisor forces a break from the wallboard; the agent's page follows
    row = board.locator(f"tr[data-agent='{center['agent_id']}']")
    expect(row).to_contain_text("Ready")
    row.get_by_label("Break reason for Ana Agent").select_option("training")
    row.get_by_role("button", name="Break").click()
    expect(state).to_have_text("Break · training", timeout=2000)
    expect(row).to_contain_text("Break · training")
    audit = center["admin"].call("GET", "/audit")
    assert any(r["action"] == "agent.state_set_by_supervisor" for r in audit["entries"])
    for p in (agent, board):
        p.context.close()


def test_alert_thresholds_are_kept_on_the_server_and_follow_live(
    browser: Browser, live_server: LiveServer, center: dict[str, Any]
) -> None:
    editor = open_as(browser, live_server, "supervisor", "/wallboard")
    other = open_as(browser, live_server, "supervisor", "/wallboard")
    for p in (editor, other):
        expect(p.locator("#queues")).to_have_attribute("data-ready", "true")
    form = editor.get_by_test_id("thresholds")
    form.get_by_label("Alerts for").select_option("support")
    waiting_over = form.get_by_label("Waiting over")
    waiting_over.fill("0")
    form.get_by_role("button", name="Save").click()
    expect(form.locator(".field-error[data-for='max_waiting']")).not_to_be_empty()
    expect(waiting_over).to_have_attribute("aria-invalid", "true")
    waiting_over.fill("1")
    form.get_by_role("button", name="Save").click()
    expect(form.get_by_role("status")).to_have_text("Saved.")

    # two callers wait (the agent is on break): both wallboards raise the queue's alert
    sup = center["sup"]
    iids = [
        sup.call("POST", "/interactions", {"queue_id": "support", "channel": "chat"})[
            "interaction"
        ]["interaction_id"]
        for _ in range(2)
    ]
    for p in (editor, other):
        expect(p.get_by_test_id("alerts")).to_contain_text("Support: 2 waiting is over 1")
        expect(p.get_by_test_id("queue-support")).to_have_class(re.compile("breach"))
    screenshot(other, "wallboard-alert")
    th = sup.call("GET", "/stats/thresholds")
    assert th["queues"]["support"]["override"]["max_waiting"] == 1
    # back to the default: the alert goes away everywhere
    editor.get_by_role("button", name="Use default").click()
    for p in (editor, other):
        expect(p.get_by_test_id("alerts")).not_to_contain_text("waiting is over")
    for iid in iids:
        sup.call("POST", f"/interactions/{iid}/abandon", {})
    for p in (editor, other):
        p.context.close()


def test_an_agent_consults_an_expert_and_hands_the_customer_over(
    browser: Browser, live_server: LiveServer, center: dict[str, Any]
) -> None:
    admin, sup = center["admin"], center["sup"]
    expert = admin.call(
        "POST",
        "/users",
        {
            "username": "expert",
            "password": ADMIN_PASSWORD,
            "role": "agent",
            "display_name": "Eli Expert",
        },
    )
    admin.call("PUT", f"/agents/{expert['id']}", {"capacity": {"voice": 1, "chat": 3}})
    owner_id = center["agent_id"]
    sup.call("POST", f"/agents/{expert['id']}/login")
    sup.call("POST", f"/agents/{owner_id}/login", ok=(200, 409))
    sup.call("POST", f"/agents/{owner_id}/state", {"state": "available"})

    owner = open_as(browser, live_server, "agent", "/agent")
    helper = open_as(browser, live_server, "expert", "/agent")
    created = sup.call(
        "POST", "/interactions", {"queue_id": "support", "channel": "chat", "customer_id": "c-100"}
    )
    iid = created["interaction"]["interaction_id"]
    owner.get_by_test_id("offer").get_by_role("button", name="Accept").click()
    card = owner.get_by_test_id("interaction")
    expect(card).to_be_visible()
    # a chat's customer can be called from the record (click-to-dial)
    expect(card.get_by_test_id("call-customer")).to_have_text("Call")

    # consult: the expert's desk shows the consultation, for the owner, with the customer
    card.get_by_label("Consult an agent").select_option(label="Eli Expert")
    card.get_by_role("button", name="Consult", exact=True).click()
    consulting = card.get_by_test_id("consulting")
    expect(consulting).to_contain_text("Consulting Eli Expert")
    consultation = helper.get_by_test_id("participant")
    expect(consultation).to_have_attribute("data-role", "consult")
    expect(consultation).to_contain_text("Consultation · Chat with Lena Ruiz")
    expect(consultation.get_by_test_id("owner")).to_have_text("for Ana Agent")
    expect(consultation.get_by_role("button", name="Complete")).to_have_count(0)
    expect(helper.get_by_test_id("agent-state")).to_have_text("Busy")
    assert static_problems(helper) == []
    assert static_problems(owner) == []
    screenshot(owner, "agent-desktop-consulting")

    # the owner ends it: the expert is free again and the owner alone with the customer
    consulting.get_by_role("button", name="End consultation").click()
    expect(card.get_by_test_id("consulting")).to_have_count(0)
    expect(helper.get_by_test_id("participant")).to_have_count(0)
    expect(helper.get_by_test_id("agent-state")).to_have_text("Ready")

    # consult again, then hand the customer over: the expert owns it, the owner wraps up
    card.get_by_label("Consult an agent").select_option(label="Eli Expert")
    card.get_by_role("button", name="Consult", exact=True).click()
    card.get_by_test_id("consulting").get_by_role("button", name="Transfer to Eli Expert").click()
    expect(owner.get_by_test_id("wrapup")).to_be_visible()
    mine = helper.get_by_test_id("interaction")
    expect(mine).to_be_visible()
    expect(mine).to_contain_text("Chat with Lena Ruiz")
    mine.get_by_role("button", name="Complete").click()
    expect(helper.get_by_test_id("wrapup")).to_be_visible()

    # a phone call held by the PBX (it has a call_id) is taken on the phone, not on the desk
    owner.get_by_test_id("wrapup").get_by_role("button", name="End wrap-up").click()
    expect(owner.get_by_test_id("agent-state")).to_have_text("Ready")
    phoned = sup.call(
        "POST",
        "/interactions",
        {
            "queue_id": "support",
            "channel": "voice",
            "attributes": {"ani": "+15550199", "dnis": "+18005550100", "call_id": "c-77"},
        },
    )["interaction"]["interaction_id"]
    offer = owner.get_by_test_id("offer")
    expect(offer.get_by_test_id("ringing")).to_contain_text("Your phone is ringing")
    expect(offer.get_by_test_id("answer-on-phone")).to_be_visible()
    expect(offer.get_by_role("button", name="Accept")).to_have_count(0)
    expect(offer).not_to_contain_text("c-77")  # the PBX's own id is not a customer attribute
    assert static_problems(owner) == []
    screenshot(owner, "agent-desktop-phone-offer")
    refused = center["admin"].http.post(
        f"/interactions/{phoned}/accept", json={"agent_id": owner_id}
    )
    assert refused.status_code == 409 and "answer it there" in refused.json()["detail"]
    offer.get_by_role("button", name="Reject").click()
    sup.call("POST", f"/interactions/{phoned}/abandon", {"reason": "hangup"})

    events = sup.call("GET", "/events?after=0&limit=1000")["events"]
    story = [e for e in events if e["payload"].get("interaction_id") == iid]
    kinds = [e["type"] for e in story]
    assert kinds.count("interaction.consult_started") == 2
    left = next(e for e in story if e["type"] == "interaction.participant_left")
    assert left["payload"]["reason"] == "consult_ended"
    transferred = next(e for e in story if e["type"] == "interaction.transferred")
    assert transferred["payload"]["kind"] == "consult"
    assert transferred["payload"]["to_agent_id"] == expert["id"]
    completed = next(e for e in story if e["type"] == "interaction.completed")
    assert completed["payload"]["agent_id"] == expert["id"]
    for p in (owner, helper):
        p.context.close()


def test_click_to_dial_from_the_desk_says_why_a_call_cannot_be_placed(
    browser: Browser, live_server: LiveServer, center: dict[str, Any]
) -> None:
    """The desk's dial box asks the PBX to ring the agent's phone and then the number; the
    agent of this test has no registered phone, so the answer is the PBX's refusal."""
    agent = open_as(browser, live_server, "agent", "/agent")
    expect(agent.locator("#desk")).to_have_attribute("data-ready", "true")
    dial = agent.get_by_test_id("dial")
    expect(dial.get_by_label("Number to call")).to_be_visible()
    agent.keyboard.press("Alt+d")
    expect(dial.get_by_label("Number to call")).to_be_focused()
    agent.keyboard.type("+4930123456")
    agent.keyboard.press("Enter")
    alert = agent.get_by_role("alert")
    expect(alert).to_contain_text("Call +4930123456: You have no registered phone")
    dial.get_by_label("Number to call").fill("call me")
    dial.get_by_role("button", name="Call").click()
    expect(agent.get_by_role("alert").last).to_contain_text("to must be an extension or a phone")
    assert static_problems(agent) == []
    agent.context.close()


def test_the_agents_own_outbound_contact_shows_on_the_desk_and_wraps_up(
    browser: Browser, live_server: LiveServer, center: dict[str, Any]
) -> None:
    """A contact the agent starts (here through the API, as a CRM integration or the
    click-to-dial of a registered phone would) is their work at once: busy, with the
    customer found by the number called, then the usual completion and wrap-up."""
    me = Client(live_server.url, "agent")
    agent_id = center["agent_id"]
    me.call("POST", f"/agents/{agent_id}/login", ok=(200, 409))
    me.call("POST", f"/agents/{agent_id}/state", {"state": "available"})
    agent = open_as(browser, live_server, "agent", "/agent")
    expect(agent.locator("#desk")).to_have_attribute("data-ready", "true")
    started = me.call(
        "POST", "/interactions/outbound", {"channel": "voice", "attributes": {"to": "+15550142"}}
    )
    assert started["interaction"]["direction"] == "outbound"
    card = agent.locator("[data-testid='interaction'][data-direction='outbound']")
    expect(card.get_by_role("heading")).to_have_text("Outbound call to Lena Ruiz")
    expect(agent.get_by_test_id("agent-state")).to_have_text("Busy")
    expect(card.get_by_test_id("customer-record")).to_contain_text("+15550142")
    assert static_problems(agent) == []
    card.get_by_role("button", name="Complete").click()
    wrap = agent.get_by_test_id("wrapup")
    expect(wrap).to_be_visible()
    wrap.get_by_role("button", name="End wrap-up").click()
    expect(agent.get_by_test_id("agent-state")).to_have_text("Ready")
    expect(agent.get_by_test_id("today-outbound")).to_have_text("1")  # My day: calls placed
    # The customer's history names it as an outbound contact the agent placed.
    context = me.call("GET", f"/interactions/{started['interaction']['interaction_id']}/context")
    assert context["interaction"]["direction"] == "outbound"
    assert context["customer"]["id"] == "c-100"
    agent.context.close()


def call_on_the_desk(
    browser: Browser, live_server: LiveServer, center: dict[str, Any], to: str, call_id: str
) -> tuple[Page, Locator]:
    """The agent, ready, with an outbound call to ``to`` on their phone (its ``call_id``,
    held by no SIP server): the desk and the call's card."""
    me = Client(live_server.url, "agent")
    agent_id = center["agent_id"]
    me.call("POST", f"/agents/{agent_id}/login", ok=(200, 409))
    me.call("POST", f"/agents/{agent_id}/state", {"state": "available"})
    agent = open_as(browser, live_server, "agent", "/agent")
    expect(agent.locator("#desk")).to_have_attribute("data-ready", "true")
    me.call(
        "POST",
        "/interactions/outbound",
        {"channel": "voice", "attributes": {"to": to, "call_id": call_id}},
    )
    return agent, agent.locator("[data-testid='interaction'][data-direction='outbound']")


def test_a_call_on_the_phone_offers_put_through_to_a_number(
    browser: Browser, live_server: LiveServer, center: dict[str, Any]
) -> None:
    """A call on the agent's phone (it has a ``call_id``) offers *Put through to a number*;
    this test's call is held by no SIP server, so the PBX's refusal is shown."""
    agent, card = call_on_the_desk(browser, live_server, center, "+15550142", "not-held-here")
    number = card.get_by_label("Number to put the call through to")
    expect(number).to_be_visible()
    expect(card.get_by_label("Transfer to")).to_have_count(0)  # a placed call: not to agents
    number.fill("20 03")
    card.get_by_role("button", name="Put through").click()
    expect(agent.get_by_role("alert").last).to_contain_text("Put through: The call cannot be put")
    # When a number does not answer, the PBX says so on the event stream: the desk tells
    # the agent (the event is played into the page as the WebSocket would deliver it).
    agent.evaluate(
        """() => document.dispatchEvent(new CustomEvent("sc:event", {detail: {
            type: "call.transfer_failed", time: new Date().toISOString(),
            payload: {call_id: "not-held-here", to: "2003", status: 486}}}))"""
    )
    expect(agent.get_by_role("alert").last).to_contain_text(
        "Put through to 2003 failed (486): the caller is still with you."
    )
    assert static_problems(agent) == []
    card.get_by_role("button", name="Complete").click()
    agent.get_by_test_id("wrapup").get_by_role("button", name="End wrap-up").click()
    expect(agent.get_by_test_id("agent-state")).to_have_text("Ready")
    agent.context.close()


def test_a_call_on_the_phone_shows_its_recording_and_the_next_step(
    browser: Browser, live_server: LiveServer, center: dict[str, Any]
) -> None:
    """The *Recording* panel of a call on the agent's phone follows the ``recording.*``
    events (played into the page as the WebSocket would deliver them) and offers the next
    step; this test's call is held by no SIP server, so pressing it shows the platform's
    refusal. A call nobody records shows no panel until an event says otherwise."""
    agent, card = call_on_the_desk(browser, live_server, center, "+15550143", "not-recorded-here")
    expect(card.get_by_label("Number to put the call through to")).to_be_visible()
    expect(card.get_by_test_id("recording")).to_have_count(0)  # the platform knows no such call
    iid = card.get_attribute("data-interaction")

    def play(kind: str) -> None:
        agent.evaluate(
            """([kind, iid]) => document.dispatchEvent(new CustomEvent("sc:event", {detail: {
                type: kind, time: new Date().toISOString(), payload: {recording: {
                    id: "r1", interaction_id: iid, call_id: "not-recorded-here"}}}}))""",
            [kind, iid],
        )

    play("recording.started")
    panel = card.get_by_test_id("recording")
    expect(panel).to_have_attribute("data-state", "recording")
    expect(panel).to_contain_text("Recording")
    play("recording.paused")
    expect(panel).to_have_attribute("data-state", "paused")
    expect(panel).to_contain_text("the customer is not recorded")
    panel.get_by_role("button", name="Resume recording").click()
    expect(agent.get_by_role("alert").last).to_contain_text(
        "Resume recording: No call 'not-recorded-here' of yours is going on."
    )
    assert static_problems(agent) == []
    card.get_by_role("button", name="Complete").click()
    agent.get_by_test_id("wrapup").get_by_role("button", name="End wrap-up").click()
    expect(agent.get_by_test_id("agent-state")).to_have_text("Ready")
    agent.context.close()
