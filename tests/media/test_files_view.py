"""The Files modal: newest first, checkbox groups of at most 10 (paged), Send to customer."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from blocks.codec import BadState, FilesState, decode
from storage.models import CustomerSend, CustomerSendFile, StaffUser
from tests.support.factories import make_ro
from tests.support.files import (
    crafted,
    jpeg_bytes,
    latest_view,
    open_files,
    press_page,
    stored_file,
    submit,
    wait_send,
    with_ticks,
)
from tests.support.harness import wait_until


def _checkboxes(view: dict) -> list[dict]:
    return [b for b in view["blocks"] if b.get("type") == "input" and b["element"]["type"] == "checkboxes"]


def _option_ids(view: dict) -> list[int]:
    return [int(o["value"]) for block in _checkboxes(view) for o in block["element"]["options"]]


def test_files_button_lists_the_files_newest_first_with_checkboxes(app, client, fake_slack):
    ro = make_ro(fake_slack, members=("UTECH",))
    old = stored_file(app, ro, jpeg_bytes(color=(1, 1, 1)), "old.jpg", "image/jpeg", minutes_ago=30)
    new = stored_file(app, ro, jpeg_bytes(color=(2, 2, 2)), "new.jpg", "image/jpeg", minutes_ago=1)
    clip = stored_file(app, ro, b"video", "walkaround.mp4", "video/mp4", minutes_ago=10)
    view = open_files(client, fake_slack, ro)
    assert decode(view["private_metadata"], FilesState) == FilesState(ro.id)
    assert _option_ids(view) == [new.id, clip.id, old.id]
    listing = next(b for b in view["blocks"] if b.get("block_id") == "files_list")["text"]["text"]
    assert listing.index("new.jpg") < listing.index("walkaround.mp4") < listing.index("old.jpg")
    assert "https://dealer.slack.com/files/UTECH/new.jpg" in listing, "each file links to its Slack permalink"
    assert view["submit"]["text"] == "Envoyer au client"  # UADVISOR's Slack is in French
    how = next(b for b in view["blocks"] if b.get("block_id") == "files_how")["elements"][0]["text"]
    assert "(514) 555-0142" in how


def test_more_than_ten_files_are_paged_and_ticks_survive_paging(app, client, fake_slack, twilio):
    ro = make_ro(fake_slack, members=("UTECH",))
    files = [
        stored_file(app, ro, jpeg_bytes(color=(i, i, i)), f"IMG_{i:04d}.jpg", "image/jpeg", minutes_ago=i) for i in range(23)
    ]
    view = open_files(client, fake_slack, ro)
    first_page = _option_ids(view)
    assert first_page == [f.id for f in files[:10]] and len(_checkboxes(view)) == 1
    assert len(view["blocks"]) <= 100

    ticked_view = with_ticks(view, [files[0].id, files[3].id])
    second = press_page(client, fake_slack, ticked_view, "files.next", "1")
    assert _option_ids(second) == [f.id for f in files[10:20]]
    page_line = next(b for b in second["blocks"] if b.get("block_id") == "files_page")["elements"][0]["text"]
    assert "2" in page_line and "3" in page_line and "2 coché" in page_line

    third = press_page(client, fake_slack, with_ticks(second, [files[12].id]), "files.next", "2")
    assert _option_ids(third) == [f.id for f in files[20:]]
    back = press_page(client, fake_slack, third, "files.prev", "1")
    initial = next(iter(_checkboxes(back)))["element"].get("initial_options", [])
    assert [int(o["value"]) for o in initial] == [files[12].id], "page 2 remembers its tick"

    answer = submit(client, with_ticks(back, [files[12].id]))
    assert answer["response_action"] == "update"
    send = wait_send("sent")
    sent = {i.file_id for i in CustomerSendFile.select().where(CustomerSendFile.send == send)}
    assert sent == {files[0].id, files[3].id, files[12].id}


def test_unticking_on_a_page_removes_the_file(app, client, fake_slack, twilio):
    ro = make_ro(fake_slack, members=("UTECH",))
    files = [stored_file(app, ro, jpeg_bytes(color=(i, 0, 0)), f"p{i}.jpg", "image/jpeg", minutes_ago=i) for i in range(12)]
    view = open_files(client, fake_slack, ro)
    second = press_page(client, fake_slack, with_ticks(view, [files[0].id, files[1].id]), "files.next", "1")
    back = press_page(client, fake_slack, second, "files.prev", "0")
    submit(client, with_ticks(back, [files[1].id]))
    send = wait_send("sent")
    assert [i.file_id for i in CustomerSendFile.select().where(CustomerSendFile.send == send)] == [files[1].id]


def test_slash_files_opens_the_modal_in_an_ro_channel_only(app, client, fake_slack):
    ro = make_ro(fake_slack, members=("UTECH",))
    stored_file(app, ro, jpeg_bytes(), "a.jpg", "image/jpeg")
    client.command("files", user_id="UTECH", channel_id=ro.channel_id)
    fake_slack.wait_for("views.open")
    assert latest_view(fake_slack)["title"]["text"] == "Files"

    client.command("files", user_id="UTECH", channel_id="CGENERAL")
    wait_until(lambda: fake_slack.responses, message="an answer")
    assert "repair-order channel" in fake_slack.responses[-1]["text"]
    assert len(fake_slack.calls_to("views.open")) == 1


def test_an_ro_without_files_says_so_and_has_no_send_button(app, client, fake_slack):
    ro = make_ro(fake_slack, members=("UTECH",))
    view = open_files(client, fake_slack, ro, user="UTECH")
    assert "submit" not in view and not _checkboxes(view)
    assert "No files in this channel yet" in str(view["blocks"])


def test_files_not_copied_are_listed_but_cannot_be_ticked(app, client, fake_slack):
    ro = make_ro(fake_slack, members=("UTECH",))
    big = stored_file(app, ro, b"x" * 10, "huge.mov", "video/quicktime", copy_status="too_large")
    ok = stored_file(app, ro, jpeg_bytes(), "ok.jpg", "image/jpeg", minutes_ago=5)
    view = open_files(client, fake_slack, ro, user="UTECH")
    assert _option_ids(view) == [ok.id]
    listing = next(b for b in view["blocks"] if b.get("block_id") == "files_list")["text"]["text"]
    assert "huge.mov" in listing and "too large" in listing
    assert big.id not in _option_ids(view)


def test_without_permission_the_modal_has_no_send_button(app, client, fake_slack, twilio, smtp):
    ro = make_ro(fake_slack, members=("UTECH",))
    photo = stored_file(app, ro, jpeg_bytes(), "a.jpg", "image/jpeg")
    StaffUser.create(slack_user_id="UTECH", name="luc", locale="en-US", can_message_customers=False)
    view = open_files(client, fake_slack, ro, user="UTECH")
    assert "submit" not in view and not _checkboxes(view)
    assert "not allowed to send" in str(view["blocks"])
    # A Send crafted anyway is refused by the server, and nothing goes out.
    answer = submit(client, crafted(view, [photo]), user="UTECH")
    assert answer["response_action"] == "errors" and "not allowed" in next(iter(answer["errors"].values()))
    app.settle()
    assert CustomerSend.select().count() == 0
    assert twilio.messages == [] and twilio.rejected == [] and smtp.messages == []


def test_ten_files_with_long_names_still_open_within_slacks_limits(app, client, fake_slack):
    ro = make_ro(fake_slack, members=("UTECH",))
    stem = "Estimate & inspection <report> for customer vehicle 2021 Honda Civic front brakes rotors pads calipers "
    names = [f"{i:02d}_{stem}{'x' * 40}.pdf" for i in range(10)]
    assert all(len(n) >= 150 for n in names)
    files = [
        stored_file(app, ro, b"%PDF-1.4 " + bytes([i]), name, "application/pdf", minutes_ago=i) for i, name in enumerate(names)
    ]
    StaffUser.create(slack_user_id="UTECH", name="luc", real_name="Luc " + "&" * 200, locale="en-US")
    view = open_files(client, fake_slack, ro)  # the fake Slack refuses a section text over 3,000 characters
    listing = [b["text"]["text"] for b in view["blocks"] if b.get("block_id", "").startswith("files_list")]
    assert listing and all(len(text) <= 3000 for text in listing)
    text = "\n".join(listing)
    for number, f in enumerate(files, start=1):
        assert (
            f"`{number}.`" in text
            and f"<{quote(f.permalink, safe=':/&')}|{f.name[:2]}_Estimate &amp; inspection &lt;report&gt;" in text
        )
    assert "…" in text, "long names are shortened"
    assert _option_ids(view) == [f.id for f in files]
    assert len(view["blocks"]) <= 100


def test_the_selection_kept_between_pages_never_cuts_an_id():
    state = FilesState(7, page=3, selected=frozenset(range(100000, 100000 + 600)))
    meta = state.encode()
    assert len(meta) <= 3000
    decoded = decode(meta, FilesState)
    assert decoded.overflow and decoded.selected <= set(range(100000, 100600)) and decoded.page == 3
    assert decoded.selected == set(range(100000, 100000 + len(decoded.selected)))  # whole ids, the lowest kept
    for junk in ("ro:x|p=1", "admin|p=1", '{"v":1,"k":"files","ro":7,"s":["1"]}', '{"v":1,"k":"home"}'):
        with pytest.raises(BadState):
            decode(junk, FilesState)


def test_too_many_files_at_once_is_refused(app, client, fake_slack, twilio):
    from customers.send_rules import MAX_FILES_PER_SEND
    from tests.support.files import press_page

    ro = make_ro(fake_slack, members=("UTECH",))
    files = [
        stored_file(app, ro, jpeg_bytes(color=(i, 1, 1)), f"m{i}.jpg", "image/jpeg", minutes_ago=i)
        for i in range(MAX_FILES_PER_SEND + 1)
    ]
    view = open_files(client, fake_slack, ro)
    for page in range(1, 4):
        view = press_page(client, fake_slack, with_ticks(view, [f.id for f in files]), "files.next", str(page))
    answer = submit(client, with_ticks(view, [f.id for f in files]))
    assert answer["response_action"] == "errors" and str(MAX_FILES_PER_SEND) in next(iter(answer["errors"].values()))
    assert CustomerSend.select().count() == 0
