"""Admin › Phone numbers & hours in a real Chromium: business hours and the DIDs following them."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from tests.browser.conftest import LiveServer, screenshot
from tests.browser.test_accessibility import static_problems
from tests.browser.test_desk import Client
from tests.browser.test_web_shell import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_admin_sets_business_hours_and_a_number_follows_them(
    page: Page, live_server: LiveServer
) -> None:
    admin = Client(live_server.url, "admin")
    admin.call("POST", "/queues", {"id": "after-hours", "name": "After hours"})
    admin.call("POST", "/queues", {"id": "hotline", "name": "Hotline"})
    admin.call("POST", "/telephony/dids", {"number": "+4930777", "destination": "queue:hotline"})

    sign_in(page, "admin")
    page.goto("/admin/numbers")
    expect(page.get_by_test_id("dids-table")).to_contain_text("+4930777")
    form = page.locator("#hours-form")

    # Mistakes are shown next to the field, in words, and nothing is saved.
    form.get_by_label("Name").fill("support-hours")
    form.get_by_label("Time zone").fill("Europe/Berlin")
    form.get_by_label("Opening hours").fill("weekdays 08:00-18:00")
    form.get_by_role("button", name="Save business hours").click()
    expect(form.locator(".field-error[data-for='weekly']")).to_contain_text(
        'line 1: "weekdays" is not a day'
    )
    form.get_by_label("Opening hours").fill("mon-fri 8-18")
    form.get_by_role("button", name="Save business hours").click()
    expect(form.locator(".field-error[data-for='weekly']")).to_contain_text(
        "'8' is not a time HH:MM"
    )
    expect(form.get_by_label("Opening hours")).to_have_attribute("aria-invalid", "true")
    form.get_by_label("Time zone").fill("Berlin")
    form.get_by_label("Opening hours").fill("mon-sun 00:00-24:00")
    form.get_by_role("button", name="Save business hours").click()
    expect(form.locator(".field-error[data-for='timezone']")).to_contain_text(
        "'Berlin' is not a known time zone"
    )
    assert admin.call("GET", "/telephony/business-hours") == []

    # Open around the clock, closed on a holiday: saved, and open now.
    form.get_by_label("Time zone").fill("Europe/Berlin")
    form.get_by_label("Holidays and special days").fill(
        "2030-12-25 Christmas Day\n2030-12-24 09:00-12:00"
    )
    form.get_by_role("button", name="Save business hours").click()
    row = page.get_by_test_id("hours-table").locator("tr[data-hours='support-hours']")
    expect(row).to_contain_text("mon-sun 00:00-24:00")
    expect(row).to_contain_text("2030-12-25 Christmas Day")
    expect(row).to_contain_text("2030-12-24 09:00-12:00")
    expect(row.get_by_test_id("open-now")).to_contain_text("Open")

    # The number follows them; closed, its calls go to the after-hours queue.
    did = page.get_by_test_id("dids-table").locator("tr[data-did='+4930777']")
    did.get_by_label("Business hours of +4930777").select_option("support-hours")
    did.get_by_label("Where +4930777 goes when closed").fill("queue:nosuch")
    did.get_by_role("button", name="Save").click()
    expect(did.get_by_test_id("did-status")).to_contain_text("no queue 'nosuch' here")
    did.get_by_label("Where +4930777 goes when closed").fill("queue:after-hours")
    did.get_by_role("button", name="Save").click()
    expect(
        page.get_by_test_id("dids-table")
        .locator("tr[data-did='+4930777']")
        .get_by_test_id("did-status")
    ).to_have_text("Saved.")
    (saved,) = admin.call("GET", "/telephony/dids")
    assert (saved["hours"], saved["closed_destination"]) == ("support-hours", "queue:after-hours")

    # Edit: weekdays only from now on.
    row.get_by_role("button", name="Edit support-hours").click()
    expect(form.get_by_label("Name")).to_have_value("support-hours")
    form.get_by_label("Opening hours").fill("mon-fri 08:00-18:00\nsat 09:00-13:00")
    form.get_by_role("button", name="Save business hours").click()
    expect(row).to_contain_text("mon-fri 08:00-18:00")
    expect(row).to_contain_text("sat 09:00-13:00")
    hours = admin.call("GET", "/telephony/business-hours/support-hours")
    assert hours["weekly"]["fri"] == ["08:00-18:00"] and "sun" not in hours["weekly"]
    # In use by a DID: removing is refused, and says why.
    row.get_by_role("button", name="Remove support-hours").click()
    expect(page.locator("#hours-status")).to_contain_text(
        "DID +4930777 follows business hours 'support-hours'"
    )
    assert static_problems(page) == []
    screenshot(page, "admin-numbers")


def test_admin_gives_a_queue_business_hours_and_keeps_what_the_form_does_not_show(
    page: Page, live_server: LiveServer
) -> None:
    admin = Client(live_server.url, "admin")
    admin.call(
        "POST",
        "/telephony/business-hours",
        # Never open (no day given), so the wallboard shows it closed whatever the day.
        {"name": "office", "timezone": "Europe/Berlin", "weekly": {}},
    )
    admin.call("POST", "/queues", {"id": "overnight", "name": "Overnight"})
    admin.call(
        "POST",
        "/queues",
        {"id": "late", "name": "Late", "max_wait_seconds": 120, "priority_rules": []},
    )
    sign_in(page, "admin")
    page.goto("/admin/queues")
    row = page.get_by_test_id("queues-table").locator("tr[data-queue='late']")
    expect(row).to_contain_text("always open")
    row.get_by_role("button", name="Edit").click()
    page.get_by_label("Name").fill("Late shift")
    page.get_by_label("Business hours").select_option("office")
    page.get_by_label("When closed, new contacts go to").select_option("overnight")
    page.get_by_role("button", name="Save queue").click()
    expect(row).to_contain_text("Late shift")
    expect(row).to_contain_text("office")
    config = admin.call("GET", "/queues/late/config")
    assert (config["hours"], config["on_closed"]["queue_id"]) == ("office", "overnight")
    assert config["max_wait_seconds"] == 120  # not on the form, kept
    # Closed hours to the queue itself: the engine's refusal shows next to the field.
    row.get_by_role("button", name="Edit").click()
    page.get_by_label("When closed, new contacts go to").select_option("late")
    page.get_by_role("button", name="Save queue").click()
    expect(page.locator(".field-error[data-for='on_closed']")).to_contain_text("same queue")
    # Callers waiting too long are put through to a desk: the dial plan checks the target.
    page.get_by_label("When closed, new contacts go to").select_option("overnight")
    page.get_by_label("Longest wait (s)").fill("90")
    page.get_by_label("After the longest wait, callers are put through to").fill("extension:1099")
    page.get_by_role("button", name="Save queue").click()
    error = page.locator(".field-error[data-for='on_max_wait.divert_to']")
    expect(error).to_contain_text("no extension 1099")
    expect(
        page.get_by_label("After the longest wait, callers are put through to")
    ).to_have_attribute("aria-invalid", "true")
    admin.call("POST", "/telephony/extensions", {"number": "1002", "password": "desk-secret-123"})
    page.get_by_label("After the longest wait, callers are put through to").fill("extension:1002")
    page.get_by_role("button", name="Save queue").click()
    expect(error).to_be_empty()
    expect(page.locator("#status")).not_to_contain_text("rror")
    config = admin.call("GET", "/queues/late/config")
    assert config["max_wait_seconds"] == 90
    assert config["on_max_wait"] == {"queue_id": None, "divert_to": "extension:1002"}
    page.reload()  # the table as the server has it now (not the rows of before the save)
    row.get_by_role("button", name="Edit").click()
    expect(page.get_by_label("After the longest wait, callers are put through to")).to_have_value(
        "extension:1002"
    )
    # Waiting callers hear music and announcements, and press 1 to be called back.
    page.get_by_label("Waiting callers hear").select_option("on")
    page.get_by_label("Announce place and wait every (s)").fill("45")
    page.get_by_label("Key to be called back").fill("1")
    page.get_by_role("button", name="Save queue").click()
    expect(page.locator("#status")).to_have_text("Saved.")
    waiting = admin.call("GET", "/queues/late/config")["waiting"]
    assert waiting == {**waiting, "music_on_hold": True, "announce_every_seconds": 45}
    assert waiting["callback_key"] == "1"
    page.reload()  # the table as the server has it now (not the rows of before the save)
    row.get_by_role("button", name="Edit").click()
    expect(page.get_by_label("Key to be called back")).to_have_value("1")
    expect(page.get_by_label("Waiting callers hear")).to_have_value("on")
    # After the call, callers rate it from 1 to 10 (the question is the default one).
    page.get_by_label("After the agent hangs up, callers").select_option("10")
    page.get_by_role("button", name="Save queue").click()
    expect(page.locator("#status")).to_have_text("Saved.")
    survey = admin.call("GET", "/queues/late/config")["survey"]
    assert (survey["enabled"], survey["max_score"], survey["question"]) == (True, 10, "")
    assert admin.call("GET", "/queues/late/config")["waiting"]["callback_key"] == "1"  # kept
    page.reload()
    row.get_by_role("button", name="Edit").click()
    expect(page.get_by_label("After the agent hangs up, callers")).to_have_value("10")
    assert static_problems(page) == []
    # The wallboard says which queue is closed now.
    page.goto("/wallboard")
    expect(page.get_by_test_id("queue-late").get_by_test_id("closed")).to_have_text("Closed")
    expect(page.get_by_test_id("queue-overnight").get_by_test_id("closed")).to_have_count(0)


def test_admin_builds_a_voice_menu_and_a_number_plays_it(
    page: Page, live_server: LiveServer
) -> None:
    admin = Client(live_server.url, "admin")
    admin.call("POST", "/queues", {"id": "ivrui-sales", "name": "IVR UI sales"})
    admin.call("POST", "/queues", {"id": "ivrui-help", "name": "IVR UI help"})
    page.on("dialog", lambda dialog: dialog.accept())  # the confirm() before deleting
    try:
        sign_in(page, "admin")
        page.goto("/admin/numbers")
        form = page.locator("#ivr-form")
        table = page.get_by_test_id("ivr-table")

        # A new menu with two keys, through the form.
        form.get_by_label("Name").fill("ivrui-front")
        form.get_by_label("Prompt").fill("Welcome. For sales press 1. For help press 2.")
        form.get_by_label("Options").fill("1 queue:ivrui-sales")
        form.get_by_role("button", name="Save voice menu").click()
        expect(form.locator(".field-error[data-for='options']")).to_contain_text(
            'line 1: write the key, "=" and where it leads'
        )
        form.get_by_label("Options").fill("1 = queue:ivrui-sales\n2 = queue:ivrui-help")
        form.get_by_label("Seconds to wait for a key").fill("4")
        form.get_by_label("Attempts").fill("2")
        form.get_by_role("button", name="Save voice menu").click()
        expect(page.locator("#ivr-status")).to_have_text("Saved ivrui-front.")
        row = table.locator("tr[data-menu='ivrui-front']")
        expect(row).to_contain_text("1 → queue:ivrui-sales")
        expect(row).to_contain_text("2 → queue:ivrui-help")
        expect(row).to_contain_text("reject")
        menu = admin.call("GET", "/telephony/ivr-menus/ivrui-front")
        assert menu["options"] == {"1": "queue:ivrui-sales", "2": "queue:ivrui-help"}
        assert (menu["timeout_seconds"], menu["attempts"]) == (4, 2)

        # Edit: a key to an unknown extension is refused next to Options, naming the key.
        row.get_by_role("button", name="Edit ivrui-front").click()
        expect(form.get_by_label("Name")).to_have_value("ivrui-front")
        expect(form.get_by_label("Options")).to_have_value(
            "1 = queue:ivrui-sales\n2 = queue:ivrui-help"
        )
        form.get_by_label("Options").fill(
            "1 = queue:ivrui-sales\n2 = queue:ivrui-help\n9 = extension:9999"
        )
        form.get_by_label("When no valid key").fill("queue:ivrui-help")
        form.get_by_role("button", name="Save voice menu").click()
        expect(form.locator(".field-error[data-for='options']")).to_contain_text(
            "key 9: no extension 9999 here"
        )
        expect(form.get_by_label("Options")).to_have_attribute("aria-invalid", "true")
        assert admin.call("GET", "/telephony/ivr-menus/ivrui-front")["default"] == "reject"
        form.get_by_label("Options").fill("1 = queue:ivrui-sales\n2 = queue:ivrui-help")
        form.get_by_role("button", name="Save voice menu").click()
        expect(page.locator("#ivr-status")).to_have_text("Saved ivrui-front.")
        expect(row).to_contain_text("queue:ivrui-help")
        assert admin.call("GET", "/telephony/ivr-menus/ivrui-front")["default"] == (
            "queue:ivrui-help"
        )
        expect(form.get_by_label("Name")).to_have_value("")  # the form is for a new menu again

        # A phone number plays the menu.
        expect(page.locator("#did-dest-help")).to_contain_text("ivr:NAME")
        did_form = page.locator("#did-form")
        did_form.get_by_label("Number").fill("+4930888123")
        did_form.get_by_label("Destination").fill("ivr:ivrui-front")
        did_form.get_by_role("button", name="Add phone number").click()
        did = page.get_by_test_id("dids-table").locator("tr[data-did='+4930888123']")
        expect(did.get_by_label("Destination of +4930888123")).to_have_value("ivr:ivrui-front")
        dids = {d["number"]: d for d in admin.call("GET", "/telephony/dids")}
        assert dids["+4930888123"]["destination"] == "ivr:ivrui-front"

        # While the number plays it, the menu cannot be deleted, and the page says why.
        row.get_by_role("button", name="Delete ivrui-front").click()
        expect(page.locator("#ivr-status")).to_contain_text(
            "DID +4930888123 goes to voice menu 'ivrui-front'"
        )
        expect(row).to_be_visible()
        assert static_problems(page) == []
        screenshot(page, "admin-numbers-voice-menus")

        # Clean up through the page: the number first, then the menu.
        did.get_by_role("button", name="Remove +4930888123").click()
        expect(did).to_have_count(0)
        row.get_by_role("button", name="Delete ivrui-front").click()
        expect(page.locator("#ivr-status")).to_have_text("Deleted ivrui-front.")
        expect(row).to_have_count(0)
        assert "ivrui-front" not in {m["name"] for m in admin.call("GET", "/telephony/ivr-menus")}
    finally:
        admin.call("DELETE", "/telephony/dids/+4930888123", ok=(204, 404))
        admin.call("DELETE", "/telephony/ivr-menus/ivrui-front", ok=(204, 404))
        for queue in ("ivrui-sales", "ivrui-help"):
            admin.call("DELETE", f"/queues/{queue}", ok=(204, 404))
