"""The review screen, driven with Textual's Pilot: every key, and what the store recorded."""

from __future__ import annotations

import pytest

from helpers import set_config
from labelreview.review import Queue
from labelreview.store import Store
from labelreview.tui.app import LabelReviewApp
from labelreview.tui.widgets.image_view import ImageView

# sample_data/proposals.json: image 1 (chelsea) has annotation 1 (a cat proposed as "dog");
# image 2 (coffee) has 2-5; the queue in file order is 1, 2, 3, 4, 5, ...


def make_app(store_dir, **queue_kwargs) -> tuple[LabelReviewApp, Store]:
    store = Store.open(store_dir)
    return LabelReviewApp(store, Queue(store, **queue_kwargs)), store


async def settle(pilot, app) -> None:
    """Let workers finish (image decode/compose) and the screen refresh."""
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()


async def filter_queue(pilot, app, text: str) -> None:
    """/ then ``text`` in the filter prompt, then enter, as a reviewer would."""
    await pilot.press("slash")
    await pilot.pause()
    app.screen.query_one("Input").value = text
    await pilot.press("enter")
    await settle(pilot, app)


def rendered(app) -> str:
    """All text the current screen shows, top to bottom (what capture-pane would read)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


@pytest.fixture
def app_store(sample_store):
    app, store = make_app(sample_store)
    yield app, store
    store.close()


async def test_accept_records_decision_with_author(app_store):
    app, store = app_store
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await pilot.press("a")
        await settle(pilot, app)
        assert "accepted" in rendered(app)
    a = store.annotation(1)
    assert a.status == "accepted" and a.category == "dog"
    ev = store.events(annotation=1)[-1]
    assert ev["action"] == "accept" and ev["author"] == "Test Reviewer <reviewer@example.org>"
    assert ev["login"] and ev["host"]


async def test_space_accepts_and_moves_on_to_the_next_image(app_store):
    app, store = app_store
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await pilot.press("space")
        await settle(pilot, app)
        assert app.queue.current == 2  # image 1 had one annotation: the next is on image 2
        assert "coffee.jpg" in rendered(app)
    assert store.annotation(1).status == "accepted"
    assert store.annotation(2).status == "pending"


async def test_relabel_picker_filters_as_you_type(app_store):
    app, store = app_store
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await pilot.press("r")
        await pilot.press("c", "a", "t")
        await pilot.press("enter")
        await settle(pilot, app)
    a = store.annotation(1)
    assert (a.category, a.status, a.proposed_category) == ("cat", "relabeled", "dog")
    assert store.events(annotation=1)[-1]["old"] == {"category": "dog", "status": "pending"}


async def test_relabel_picker_digit_picks_and_escape_cancels(app_store):
    app, store = app_store
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await pilot.press("r", "escape")
        await settle(pilot, app)
        assert store.annotation(1).status == "pending"
        await pilot.press("r")
        await pilot.pause()
        first = app.screen.shown[0]
        await pilot.press("1")
        await settle(pilot, app)
    assert store.annotation(1).category == first != "dog"


async def test_relabel_picker_takes_digits_typed_into_a_class_name(sample_store, open_app):
    # Digits always picked by number: "class1" then "2" chose the second class listed, so a
    # numbered taxonomy (class12, n02084071...) could not be typed. A digit now types when the text
    # with it still names a class, and picks by number otherwise (and as the first key).
    set_config(sample_store, classes=["class1", "class2", "class12", "class21", "dog", "cat"])
    app, store = open_app(sample_store)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await pilot.press("r", *"class1", "2")
        await pilot.pause()
        assert app.screen.query_one("Input").value == "class12" and app.screen.shown == ["class12"]
        await pilot.press("enter")
        await settle(pilot, app)
        assert store.annotation(1).category == "class12"
        await pilot.press("r", "c", "a", "t", "1")  # "cat1" names nothing: 1 picks the first listed
        await settle(pilot, app)
        assert store.annotation(1).category == "cat"
        await pilot.press("r")
        await pilot.pause()
        second = app.screen.shown[1]
        await pilot.press("2")  # nothing typed: picks the second listed
        await settle(pilot, app)
    assert store.annotation(1).category == second
    assert [e["new"]["category"] for e in store.events(annotation=1)] == ["class12", "cat", second]


async def test_flag_with_reason_and_comment(app_store):
    app, store = app_store
    reasons = store.config.flag_reasons
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await pilot.press("f", "2")
        await pilot.press(*"ears")
        await pilot.press("enter")
        await settle(pilot, app)
    a = store.annotation(1)
    assert (a.status, a.reason, a.comment) == ("flagged", reasons[1], "ears")


async def test_a_pasted_comment_leaves_out_control_characters(app_store):
    # A paste copied from a terminal or a web page can hold an escape code or a bidi override: the
    # box drew them raw, and the comment carried them into the log.
    from textual import events

    app, store = app_store
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await pilot.press("f", "2")
        box = app.screen.query_one("#comment")
        box.post_message(events.Paste("tail\x1b[2J cut\u202eoff\r"))
        await pilot.pause()
        assert box.value == "tail[2J cutoff"
        await pilot.press("enter")
        await settle(pilot, app)
    assert store.annotation(1).comment == "tail[2J cutoff"


def test_class_names_on_the_picture_are_escaped_as_the_list_shows_them():
    # "cat\rdog" was "cat dog" on the picture and "cat\\rdog" in the list: two classes alike
    from labelreview.tui.render import _clean_label

    assert _clean_label("cat\rdog") == "cat\\rdog" != _clean_label("cat dog")
    assert _clean_label("\x1b[31mred\u202e") == "\\x1b[31mred\\u202e"


async def test_reject_with_reason_then_undo(app_store):
    app, store = app_store
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await pilot.press("x", "1", "enter")
        await settle(pilot, app)
        assert store.annotation(1).status == "rejected"
        assert store.annotation(1).reason == store.config.reject_reasons[0]
        await pilot.press("u")
        await settle(pilot, app)
    assert store.annotation(1).status == "pending"
    actions = [e["action"] for e in store.events(annotation=1)]
    assert actions == ["reject", "undo"]  # an undo is a new event; the rejection stays in history


async def test_enter_typed_ahead_while_the_review_starts_is_enter(app_store):
    """Keys typed before the screen is up reach it through the terminal's line mode, which turns
    Enter (CR) into a line feed: Textual reads it as ctrl+j. "x enter" typed at launch opened the
    reject dialog and left it open, the enter lost and nothing recorded."""
    app, store = app_store
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await pilot.press("x", "ctrl+j", *"dup", "ctrl+j")  # as the tty hands over "x\ndup\n"
        await settle(pilot, app)
        assert not app.screen.query("ReasonDialog") and app.screen is app.review_screen
    a = store.annotation(1)
    assert (a.status, a.reason, a.comment) == ("rejected", store.config.reject_reasons[0], "dup")


async def test_moving_between_annotations_and_images(app_store):
    app, store = app_store
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await pilot.press("j")  # past the only annotation of image 1: the next image
        assert (app.queue.current, app.queue.current_image) == (2, 2)
        await pilot.press("down", "down")
        assert app.queue.current == 4
        await pilot.press("k", "up")
        assert app.queue.current == 2
        await pilot.press("n")
        assert app.queue.current_image == 3
        await pilot.press("right")
        assert app.queue.current_image == 4
        await pilot.press("p", "left")
        assert app.queue.current_image == 2
    assert store.counts()["events"] == 0  # moving never records anything


async def test_accept_all_on_image_asks_first(app_store):
    app, store = app_store
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await pilot.press("n")  # image 2: annotations 2-5
        await pilot.press("A", "n")
        await settle(pilot, app)
        assert store.counts()["accepted"] == 0
        await pilot.press("A", "y")
        await settle(pilot, app)
    assert [store.annotation(i).status for i in (2, 3, 4, 5)] == ["accepted"] * 4
    assert store.annotation(1).status == "pending"


async def test_one_undo_takes_back_the_whole_accept_the_rest(app_store):
    app, store = app_store
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await pilot.press("a")  # annotation 1, image 1: a decision of its own
        await pilot.press("n", "A", "y")  # image 2: 2-5 in one key press
        await settle(pilot, app)
        assert [store.annotation(i).status for i in (2, 3, 4, 5)] == ["accepted"] * 4
        await pilot.press("u")
        await settle(pilot, app)
        assert [store.annotation(i).status for i in (2, 3, 4, 5)] == ["pending"] * 4
        assert store.annotation(1).status == "accepted"  # the decision before the batch stays
        assert app.queue.current == 2  # back on the first of the batch
        assert "Undid accept of 4 annotations" in " ".join(str(n.message) for n in app._notifications)
        await pilot.press("u")  # the next undo is the decision before
        await settle(pilot, app)
    assert store.annotation(1).status == "pending"
    assert [e["action"] for e in store.events(annotation=3)] == ["accept", "undo"]


async def test_view_toggles_change_what_is_drawn(app_store):
    app, store = app_store
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        screen = app.screen
        assert "dog" in rendered(app)
        await pilot.press("l")
        await settle(pilot, app)
        assert not screen.options.show_names
        image_text = "\n".join(screen.query_one(ImageView).render_line(y).text for y in range(30))
        assert "dog" not in image_text
        await pilot.press("m", "z")
        await settle(pilot, app)
        assert (screen.options.show_masks, screen.options.zoom) == (False, True)
        assert "ZOOM" in rendered(app)


async def test_go_to_image_by_number_id_and_name(app_store):
    app, store = app_store
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await pilot.press("g", "3", "enter")
        assert app.queue.current_image == 3
        await pilot.press("g", *"coins", "enter")
        assert store.image(app.queue.current_image).file_name == "coins.png"
        await pilot.press("g", "#", "2", "enter")
        assert app.queue.current_image == 2


async def test_go_to_image_by_name_prefers_the_whole_name_to_a_part_of_another(tmp_path, open_app):
    """An ImageFolder with aa/bobcat.jpg imported before bb/cat.jpg: g cat.jpg (or g cat) is cat.jpg,
    not the first image whose name merely contains it. g 0002 is the file 0002.jpg, not the 2nd image."""
    import shutil

    from conftest import SAMPLE
    from labelreview.formats import classification

    data = tmp_path / "data"
    for rel, src in (("aa/bobcat.jpg", "chelsea.jpg"), ("bb/cat.jpg", "coffee.jpg"), ("bb/dog.jpg", "rocket.jpg"),
                     ("cc/0002.jpg", "coins.png")):
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SAMPLE / "images" / src, data / rel)
    root = Store.init(tmp_path / "store")
    with Store.open(root) as s:
        batch, image_root = classification.read_imagefolder(data)
        s.ingest(batch, source="folder", image_root=image_root)
    app, store = open_app(root, resume=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        for typed, expected in (("cat.jpg", "bb/cat.jpg"), ("dog.jpg", "bb/dog.jpg"), ("cat", "bb/cat.jpg"),
                                ("bob", "aa/bobcat.jpg"), ("bb/cat.jpg", "bb/cat.jpg"),
                                ("0002", "cc/0002.jpg"), ("2", "bb/cat.jpg")):  # a numbered file; a position
            await pilot.press("g", *typed, "enter")
            await settle(pilot, app)
            assert store.image(app.queue.current_image).file_name == expected, typed


async def test_filter_prompt_rebuilds_the_queue(app_store):
    app, store = app_store
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await filter_queue(pilot, app, "class:coin order:score")
        q = app.screen.queue
        assert app.queue is q  # (what `labelreview review` closes on leaving: the queue in use)
        anns = [store.annotation(i) for i in q.flat]
        assert anns and all(a.category == "coin" for a in anns)
        assert [a.score for a in anns] == sorted(a.score for a in anns)


async def test_help_lists_keys_and_quit_checkpoints_to_git(app_store):
    app, store = app_store
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await pilot.press("question_mark")
        await pilot.pause()
        text = rendered(app)
        assert "Accept+next" in text and "Relabel" in text
        await pilot.press("escape", "a")
        await settle(pilot, app)
        assert store.uncommitted() == 1
        await pilot.press("q")
        await pilot.pause()
    assert store.uncommitted() == 0
    assert "1 accepted by Test Reviewer" in store.repo.head.commit.message


async def test_missing_image_shows_a_message_and_review_goes_on(sample_store, sample_images, open_app):
    (sample_images / "chelsea.jpg").unlink()
    app, store = open_app(sample_store)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        assert "chelsea.jpg" in rendered(app)
        view_text = "\n".join(app.screen.query_one(ImageView).render_line(y).text for y in range(34))
        assert "missing" in view_text.lower() or "not found" in view_text.lower()
        await pilot.press("a")
        await settle(pilot, app)
    assert store.annotation(1).status == "accepted"


async def test_keys_remapped_in_config(sample_store, open_app):
    set_config(sample_store, keys={"accept": "y"})
    app, store = open_app(sample_store)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        footer = rendered(app).splitlines()[-1]
        assert footer.startswith(" y Accept  space Accept+next  r Relabel ")  # the keys as mapped
        assert " q Quit" in footer and " a Accept" not in footer
        await pilot.press("a")
        await settle(pilot, app)
        assert store.annotation(1).status == "pending"
        await pilot.press("y")
        await settle(pilot, app)
    assert store.annotation(1).status == "accepted"


async def test_a_mistaken_key_remap_is_reported_and_help_shows_what_each_key_does(sample_store, open_app):
    # A misspelt id was ignored without a word; reject = "a" took a from accept (Textual drops the
    # clashing default) while the help screen listed a for both.
    from labelreview.tui.screens.help import HelpScreen

    set_config(sample_store, keys={"acept": "y", "reject": "a"})
    app, store = open_app(sample_store)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot, app)
        said = " ".join(str(n.message) for n in app._notifications)
        assert "'acept' names no key binding, so it is ignored (did you mean 'accept'?)" in said
        assert "Accept (accept) has no key left: 'a' is reject's now" in said
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        rows = dict((action, keys) for keys, action in app.screen.rows)
        assert rows["Accept"] == "(no key)" and rows["Reject"] == "a"


async def test_keys_written_as_people_write_them_work_and_help_shows_what_each_key_does(sample_store, open_app):
    # accept = "shift+y" (or "Space", "F2", "Esc") was bound as written, a name no key press has:
    # the key did nothing while the footer and help showed it; accept = "" kept a working while help
    # said "(no key)"; a key given to two actions was listed for both (only the first gets it); help
    # said 1-9 picks a decision after pick_1 was moved; a name no key has ("foo") was not said.
    from labelreview.tui.screens.help import HelpScreen

    set_config(sample_store, keys={"accept": "shift+y", "zoom": "F2", "flag": "v", "reject": "v",
                                   "undo": "", "pick_1": "F1", "masks": "foo"})
    app, store = open_app(sample_store)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot, app)
        said = " ".join(str(n.message) for n in app._notifications)
        assert "'v' is given to both flag and reject: it does flag" in said
        assert "Reject (reject) has no key left" in said
        assert "undo is given no key, which leaves it as it was; undo keeps u" in said
        assert "masks = 'foo': 'foo' is no key's name; give a letter or digit" in said
        footer = rendered(app).splitlines()[-1]
        assert footer.startswith(" Y Accept  space Accept+next  r Relabel  v Flag  u Undo ")
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        rows = dict((action, keys) for keys, action in app.screen.rows)
        assert rows["Accept"] == "Y" and rows["Zoom"] == "f2" and rows["Flag"] == "v"
        assert rows["Reject"] == "(no key)" and rows["Undo"] == "u" and rows["Masks on/off"] == "m"
        assert "f1 2 3 4 5 6 7 8 9" in app.screen.rows[-2][0]
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("f2")
        await settle(pilot, app)
        assert app.screen.options.zoom
        await pilot.press("Y")
        await settle(pilot, app)
        assert store.annotation(1).status == "accepted"
        await pilot.press("u")
        await settle(pilot, app)
        assert store.annotation(1).status == "pending"


async def test_a_reviewer_taken_off_the_roles_while_the_review_is_open_is_refused_at_the_next_key(sample_store, open_app):
    # The review read labelreview.toml once, at its start: an admin who took a reviewer off the
    # list (or named the reviewers for the first time) saw them go on deciding until they quit.
    import getpass

    app, store = open_app(sample_store)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await pilot.press("a")
        await settle(pilot, app)
        assert store.annotation(1).status == "accepted"
        set_config(sample_store, roles={"reviewers": ["someone-else"], "adjudicators": [], "admins": []})
        await pilot.press("j", "a")
        await settle(pilot, app)
        said = " ".join(str(n.message) for n in app._notifications)
        assert f"{getpass.getuser()} may not review: labelreview.toml allows someone-else; nothing was written" in said
        assert store.annotation(2).status == "pending"
        assert [e["annotation"] for e in store.events()] == [1]
        set_config(sample_store, roles={"reviewers": [], "adjudicators": [], "admins": []})
        await pilot.press("a")
        await settle(pilot, app)
        assert store.annotation(2).status == "accepted"  # given back: the next key works again


@pytest.mark.parametrize("key", ["a", "space"])
async def test_decision_on_a_stale_state_is_refused(sample_store, key, open_app):
    app, store = open_app(sample_store)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        # Someone else rejects annotation 1 while it is on our screen.
        with Store.open(sample_store, author="Bob <bob@example.org>") as other:
            from labelreview.review import ReviewSession

            ReviewSession(other).reject(1, reason="false-positive")
        await pilot.press(key)
        await settle(pilot, app)
        assert "after you saw it" in "\n".join(str(n.message) for n in app._notifications)
        # space too stays on it, showing Bob's decision (it used to move on as if accepted)
        assert app.queue.current == 1 and "rejected" in rendered(app)
        assert "1/25 reviewed" in rendered(app)  # Bob's decision counts in the progress
    a = store.annotation(1)
    assert a.status == "rejected" and a.updated_by.startswith("Bob")
    assert [e["author"][:3] for e in store.events(annotation=1)] == ["Bob"]


async def test_position_survives_a_quit(sample_store):
    app, store = make_app(sample_store)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await pilot.press("n", "n", "j")
    store.close()
    app2, store2 = make_app(sample_store)
    try:
        assert app2.queue.current == app.queue.current
        assert app2.queue.current_image == 3
    finally:
        store2.close()


async def test_small_terminal_still_usable(app_store):
    app, store = app_store
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        text = rendered(app)
        assert "dog" in text and "Accept" in text
        footer = text.splitlines()[-1]
        assert "? Help" in footer and "q Quit" in footer  # were cut off the end at 80 columns
        assert " a Accept " in footer  # the first hints stay
        await pilot.press("space")
        await settle(pilot, app)
        await pilot.resize_terminal(100, 30) if hasattr(pilot, "resize_terminal") else None
        await settle(pilot, app)
    assert store.annotation(1).status == "accepted"


async def test_relabel_picker_offers_the_models_other_classes_first(app_store):
    app, store = app_store  # annotation 1 carries the model's scores {"dog": 0.91, "cat": 0.87}
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await pilot.press("r")
        await pilot.pause()
        assert app.screen.shown[0] == "cat" and "dog" not in app.screen.shown
        assert "model 0.87" in rendered(app)
        await pilot.press("1")
        await settle(pilot, app)
    assert store.annotation(1).category == "cat"


async def test_a_big_queue_opens_from_a_window_and_the_rest_arrives_after_the_first_frame(sample_store,
                                                                                        monkeypatch, open_app):
    from labelreview.review import queue as queue_mod

    monkeypatch.setattr(queue_mod, "WINDOW", 6)  # the sample's 25 items: the first images only
    app, store = open_app(sample_store, lazy=True, resume=False)
    assert app.queue.partial
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        for _ in range(30):  # the loader thread hands the rest over through call_from_thread
            if not app.queue.partial:
                break
            await pilot.pause(0.05)
        await settle(pilot, app)
        assert not app.queue.partial
        assert "0/25 reviewed" in rendered(app) and "image 1/5" in rendered(app)
        for _ in range(4):  # past the window's images: every image is still there, in order
            await pilot.press("n")
            await settle(pilot, app)
        assert "image 5/5" in rendered(app)
        await pilot.press("a")
        await settle(pilot, app)
        assert "1/25 reviewed" in rendered(app)


async def test_go_to_image_while_a_big_queue_still_loads_does_not_hold_the_keys(sample_store, monkeypatch, open_app):
    import time

    from labelreview.review import queue as queue_mod

    monkeypatch.setattr(queue_mod, "WINDOW", 6)  # the window holds the first images only
    real_load = queue_mod.Queue._load

    def slow_load(self, done):  # a 1M-item queue's loader takes a second or two
        time.sleep(1.0)
        real_load(self, done)

    monkeypatch.setattr(queue_mod.Queue, "_load", slow_load)
    app, store = open_app(sample_store, lazy=True, resume=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause(0.2)
        assert app.queue.partial
        await pilot.press("g")
        await pilot.pause()
        await pilot.press("5")
        t0 = time.perf_counter()
        await pilot.press("enter")
        assert time.perf_counter() - t0 < 0.5  # answered at once, not after the loader
        assert app.queue.partial and "image 1/" in rendered(app)
        await pilot.press("j")  # keys still work meanwhile
        for _ in range(60):
            await pilot.pause(0.05)
            if not app.queue.partial:
                break
        await settle(pilot, app)
        assert "image 5/5" in rendered(app)  # and then it went there


async def test_the_queue_loader_hands_over_without_waiting_for_the_ui_thread(sample_store, monkeypatch, open_app):
    # A move at the edge of a big queue's window holds the UI thread until the loader thread ends;
    # if the loader's hand-off waited for the UI thread in turn, the review would freeze for good.
    import threading

    from labelreview.review import queue as queue_mod

    monkeypatch.setattr(queue_mod, "WINDOW", 6)
    app, store = open_app(sample_store, lazy=True, resume=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        handoff = threading.Thread(target=app.screen._rest_loaded)  # as the loader calls it
        handoff.start()
        handoff.join(timeout=2)  # the UI thread is busy here, as it is in a move at the edge
        assert not handoff.is_alive()
        await settle(pilot, app)
        for _ in range(4):  # and the queue is whole: every image, in order
            await pilot.press("n")
            await settle(pilot, app)
        assert "image 5/5" in rendered(app)


def classification_store(tmp_path):
    """A store of one label per image (a classification CSV over four sample pictures)."""
    import shutil

    from conftest import SAMPLE
    from labelreview.formats import classification

    images = tmp_path / "images"
    images.mkdir()
    names = ["chelsea.jpg", "coffee.jpg", "rocket.jpg", "coins.png"]
    for n in names:
        shutil.copy(SAMPLE / "images" / n, images / n)
    (tmp_path / "labels.csv").write_text("image_name,label_name\nchelsea.jpg,dog\ncoffee.jpg,cup\nrocket.jpg,rocket\n"
                                         "coins.png,cat\n")
    root = Store.init(tmp_path / "store")
    with Store.open(root) as s:
        batch, image_root = classification.read_csv(tmp_path / "labels.csv", images=images)
        s.ingest(batch, source="vendor", image_root=image_root)
    return root


async def test_a_classification_dataset_is_reviewed_image_by_image(tmp_path):
    """One label per image (a classification CSV): the label is written on the picture, the same keys
    accept, relabel and move on, one image at a time."""
    app, store = make_app(classification_store(tmp_path), resume=False)
    root = store.root
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            await settle(pilot, app)
            first = app.queue.current
            assert store.annotation(first).kind == "label"
            view = app.screen.query_one(ImageView)
            assert "dog" in "\n".join(s.text for s in view.frame.strips)  # the label, on the picture
            await pilot.press("r")
            await settle(pilot, app)
            await pilot.press("c", "a", "t", "enter")  # typed to filter the classes, then chosen
            await settle(pilot, app)
            await pilot.press("space")  # accept and go on: the next image
            await settle(pilot, app)
            second = app.queue.current
            assert store.annotation(second).image_id != store.annotation(first).image_id
            assert "cup" in "\n".join(s.text for s in view.frame.strips)
            await pilot.press("x", "1", "enter")  # reject: first reason, no comment
            await settle(pilot, app)
    finally:
        store.close()
    with Store.open(root) as s:
        a, b = s.annotation(first), s.annotation(second)
        assert (a.category, a.proposed_category) == ("cat", "dog") and a.status in ("relabeled", "accepted")
        assert b.status == "rejected"


async def test_zoom_on_a_whole_image_label_says_there_is_nothing_to_zoom_to(tmp_path, open_app):
    # The status line said ZOOM and the picture stayed whole, without a word.
    app, store = open_app(classification_store(tmp_path), resume=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await pilot.press("z")
        await settle(pilot, app)
        assert app.screen.options.zoom
        assert any("nothing to zoom to" in str(n.message) for n in app._notifications)


async def test_frames_keep_the_gc_off_the_key_path_and_it_collects_when_the_reviewer_pauses(app_store,
                                                                                             monkeypatch):
    import gc
    import weakref

    from labelreview.tui.screens import review as rv

    monkeypatch.setattr(rv, "IDLE_COLLECT_AFTER", 0.05)
    monkeypatch.setattr(rv, "IDLE_COLLECT_FRAMES", 1)
    app, store = app_store

    class Node:
        pass

    try:
        async with app.run_test(size=(120, 36)) as pilot:
            await settle(pilot, app)
            assert gc.get_freeze_count() > 0  # the first frame froze what was there
            node = Node()
            node.me = node  # a garbage cycle only the cyclic GC can free
            ref = weakref.ref(node)
            del node
            gc.freeze()  # as a frame does: out of reach of every automatic collection
            await pilot.press("n")
            await settle(pilot, app)
            await pilot.pause(0.3)  # the reviewer pauses: the full collection runs
            assert ref() is None
    finally:
        gc.unfreeze()


async def test_keys_typed_while_quitting_decide_nothing(app_store):
    # 'q a r' typed fast arrive together: q saves to git and exits, but the keys behind it used to
    # be acted on meanwhile (an accept recorded that was never shown; r opened the class picker
    # on a closing app and crashed it).
    from textual import events

    app, store = app_store
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        for key in ("q", "a", "r"):  # queued at once, as one read from the terminal brings them
            app.post_message(events.Key(key, key))
        await pilot.pause(0.3)
    assert app.return_code == 0
    assert store.counts()["events"] == 0 and store.annotation(1).status == "pending"


def notices(app, monkeypatch) -> list[str]:
    said: list[str] = []
    real = app.notify
    monkeypatch.setattr(app, "notify", lambda message, *a, **k: said.append(str(message)) or real(message, *a, **k))
    return said


async def test_a_filter_that_matches_nothing_clears_the_picture_and_says_so(app_store, monkeypatch):
    app, store = app_store
    said = notices(app, monkeypatch)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await filter_queue(pilot, app, "status:rejected")
        text = rendered(app)
        assert "Nothing to review with this filter" in text  # in place of the picture
        assert any("Nothing matches this filter" in m for m in said)  # and a notice
        assert "dog ·" not in text  # the previous picture's labels are gone


async def test_next_image_on_the_last_image_says_so_and_stays(app_store, monkeypatch):
    app, store = app_store
    said = notices(app, monkeypatch)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        q = app.screen.queue
        q.move(+10**6)  # the last item of the last image (not its first)
        app.screen.refresh_view()
        await settle(pilot, app)
        last = q.current
        await pilot.press("n")
        await settle(pilot, app)
        assert q.current == last and any("last image of the queue" in m for m in said)


async def test_help_shows_its_text_whole_and_closes_with_a_remapped_help_key(sample_store, open_app):
    from labelreview.tui.screens.help import HelpScreen

    set_config(sample_store, keys={"help": "h"})
    app, store = open_app(sample_store)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await pilot.press("h")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        hint = app.screen.query_one(".hint").render()
        assert "under [keys] by binding id" in str(getattr(hint, "plain", hint))  # was eaten as markup
        await pilot.press("h")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)


def test_a_long_class_never_runs_into_the_score():
    from labelreview.tui.widgets.annotation_list import _cell

    assert _cell("person←coin", 11) == "person←co… "
    assert _cell("dog", 11) == "dog        "
    assert _cell("exactly10c", 11) == "exactly10c "


async def test_the_colour_advice_fits_a_small_terminal(sample_store, monkeypatch, open_app):
    monkeypatch.delenv("COLORTERM", raising=False)
    app, store = open_app(sample_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        app.review_screen.color_hint = "256 colours: export COLORTERM=truecolor for true colour"
        app.review_screen.refresh_view()
        await settle(pilot, app)
        progress = rendered(app).splitlines()[-2]
        assert progress.rstrip().endswith("256 colours (?)")
        await pilot.press("question_mark")
        await pilot.pause()
        notes = [str(w.render()) for w in app.screen.query(".hint")]
        assert any("COLORTERM=truecolor" in n for n in notes)


async def test_a_filter_chosen_in_the_app_is_remembered(app_store):
    from labelreview.review.queue import last_queue

    app, store = app_store
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await filter_queue(pilot, app, "status:pending order:score")
    text, flt, order, _seed = last_queue(store)
    assert (flt.statuses, order) == (["pending"], "score")


async def test_the_progress_line_says_all_in_git_once_the_background_save_is_done(sample_store, open_app):
    cfg = sample_store / "labelreview.toml"
    cfg.write_text(cfg.read_text().replace("checkpoint_every = 50", "checkpoint_every = 2"))
    app, store = open_app(sample_store)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await pilot.press("space", "a")  # two decisions: the save starts in a worker
        for _ in range(100):
            await settle(pilot, app)
            if store.uncommitted() == 0:
                break
        await settle(pilot, app)
        assert store.uncommitted() == 0
        assert "all in git" in rendered(app).splitlines()[-2]  # without another key press


async def test_control_characters_in_names_are_shown_escaped(sample_store, sample_images, open_app):
    # An image file name (or a class, a reason) with an escape code or a newline went to the
    # terminal raw from the title, the list and the detail panel: a name could colour the screen,
    # or cut the title line.
    store = Store.open(sample_store)
    store.conn.execute("UPDATE images SET file_name=? WHERE id=1", ("esc\x1b[31mred\nline.jpg",))
    store.conn.execute("UPDATE annotations SET category=? WHERE id=1", ("do\x1bg",))
    store.close()
    app, store = open_app(sample_store)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        text = rendered(app)
        assert "esc\\x1b[31mred\\nline.jpg" in text.splitlines()[0]  # the whole title, on its line
        assert "do\\x1bg" in text and "\x1b" not in text


async def test_the_help_key_closes_help_once(app_store):
    from labelreview.tui.screens.help import HelpScreen

    app, store = app_store
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("question_mark")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen) and app.screen is app.review_screen
        await pilot.press("a")  # and the review goes on
        await settle(pilot, app)
    assert store.annotation(1).status == "accepted"


async def test_the_list_shows_the_rows_above_the_selected_one_from_the_start(sample_store, open_app):
    # order:score opens coffee.jpg on #5 (its lowest score is the queue's first); the list showed
    # only "5 spoon" until a key was pressed: it had scrolled before its height was known.
    app, store = open_app(sample_store, order="score")
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        assert app.queue.current == 5
        from labelreview.tui.widgets.annotation_list import AnnotationList

        lines = [app.screen.query_one(AnnotationList).render_line(y).text.split()[:2] for y in range(1, 5)]
        assert lines == [["2", "cup"], ["3", "saucer"], ["4", "spoon"], ["5", "spoon"]]


async def test_an_empty_store_says_it_has_no_labels_not_that_the_filter_matches_nothing(empty_store, monkeypatch):
    """(With no filter at all, it said "Nothing to review with this filter. Press / to change it".)"""
    app, store = make_app(empty_store)
    said = notices(app, monkeypatch)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot, app)
            text = rendered(app)
            assert "This store holds no labels yet: `labelreview import`" in text, text
            assert "with this filter" not in text
            assert any("holds no labels yet" in m for m in said)
            await filter_queue(pilot, app, "status:pending")
            assert "Nothing to review with this filter" in rendered(app)  # a filter now: that is the reason
    finally:
        store.close()


def pictures_store(tmp_path, names, size=(64, 48)):
    """A store of one box on each of ``names`` (PNGs of ``size``, each its own colour), imported as a
    COCO file would bring them; the image folder beside it."""
    import json

    from PIL import Image as PILImage

    from labelreview.formats import coco

    images = tmp_path / "images"
    images.mkdir()
    for i, name in enumerate(names):
        PILImage.new("RGB", size, (200, 40 * i, 0)).save(images / name, format="PNG")
    data = {"images": [{"id": i + 1, "file_name": n, "width": size[0], "height": size[1]} for i, n in enumerate(names)],
            "annotations": [{"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [4, 4, 20, 16], "score": 0.9,
                             "area": 320, "iscrowd": 0} for i in range(len(names))],
            "categories": [{"id": 1, "name": "cat"}]}
    (tmp_path / "proposals.json").write_text(json.dumps(data))
    root = Store.init(tmp_path / "store")
    with Store.open(root) as s:
        s.ingest(coco.read(tmp_path / "proposals.json"), source="model", image_root=images)
        s.checkpoint()
    return root, images


async def until(pilot, condition, timeout: float = 5.0) -> bool:
    """Let the app run until ``condition()`` holds (True), or ``timeout`` seconds pass (False)."""
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        await pilot.pause(0.02)
    return condition()


def let_go_of_pipe(path) -> None:
    """Give every reader waiting on the named pipe ``path`` its end of file, and take the pipe away
    (so that code that waits on it for ever does not hold the test run after it has failed)."""
    import errno
    import os
    import time

    gone = path.with_name(path.name + ".gone")
    os.rename(path, gone)
    end = time.monotonic() + 2
    while time.monotonic() < end:
        try:
            os.close(os.open(gone, os.O_WRONLY | os.O_NONBLOCK))
        except OSError as e:
            if e.errno != errno.ENXIO:
                raise
        time.sleep(0.01)
    gone.unlink()


async def test_a_named_pipe_where_an_image_should_be_is_said_so_and_holds_up_no_other_picture(tmp_path, open_app):
    """A FIFO in place of an image (a file replaced while the review is open; here the way to be
    unreadable when running as root). Opening it for reading waits for a writer, for ever: under the
    lock every decode takes, the picture said "loading…" for good, every other image after it
    stayed blank, and q left the terminal blank with the process waiting on the stuck decode."""
    import os

    root, images = pictures_store(tmp_path, ["a.png", "b.png", "c.png"])
    pipe = images / "b.png"
    pipe.unlink()
    os.mkfifo(pipe)
    app, store = open_app(root, resume=False)
    async with app.run_test(size=(100, 30)) as pilot:
        try:
            view = app.screen.query_one(ImageView)

            def picture_of(name):
                return lambda: (store.image(app.queue.current_image).file_name == name and view.frame is not None
                                and view.frame.message is None and view.frame.width > 0)

            assert await until(pilot, picture_of("a.png"))
            await pilot.press("n")
            assert await until(pilot, lambda: view.frame is not None and "named pipe" in (view.frame.message or ""))
            assert "b.png" in view.frame.message
            await pilot.press("n")
            assert await until(pilot, picture_of("c.png")), "the next image is drawn"
            await pilot.press("a")
            await pilot.pause()
            await pilot.press("q")
            assert await until(pilot, lambda: app.return_code is not None)
        finally:
            if pipe.exists():
                let_go_of_pipe(pipe)
    assert [a.status for a in store.annotations()] == ["pending", "pending", "accepted"]


@pytest.mark.parametrize("text", ["image:99999999999999999999999", "order:random seed:99999999999999999999999",
                                  "order:random seed:²"])
async def test_a_filter_with_a_number_no_id_or_seed_can_be_says_so_and_the_review_goes_on(app_store, monkeypatch,
                                                                                          text):
    """A number past 64 bits (a pasted hash, a held key) or a digit int() cannot read ("²" passes
    isdigit) in the / prompt: the app ended with a traceback, the queue's place never saved."""
    app, store = app_store
    said = notices(app, monkeypatch)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await filter_queue(pilot, app, text)
        assert app.return_code is None and app.screen is app.review_screen
        assert any(("image id" in s or "seed takes a whole number" in s) and "2**63" in s for s in said), said
        assert app.queue.query_text() == "order:file"  # the queue as it was
        await pilot.press("a")
        await settle(pilot, app)
    assert store.annotation(1).status == "accepted"


def test_review_with_a_seed_past_64_bits_is_refused_with_a_message(sample_store, capsys):
    """`labelreview review --order random --seed 99999999999999999999999` ended in a traceback
    (TypeError: Integer exceeds 64-bit range) before the screen opened."""
    from labelreview import cli

    with pytest.raises(SystemExit) as exit_:
        cli.main(["review", "--order", "random", "--seed", "99999999999999999999999", "--store", str(sample_store)])
    assert exit_.value.code == 2
    assert "--seed: 99999999999999999999999 is too big" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["²", "#²"])
async def test_go_to_image_with_a_digit_that_is_no_number_says_so(app_store, monkeypatch, text):
    """"²" is a digit to str.isdigit and no number to int(): g then ² (AltGr+2 on many keyboards)
    ended the review with a ValueError."""
    app, store = app_store
    said = notices(app, monkeypatch)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await pilot.press("g")
        await pilot.pause()
        app.screen.query_one("Input").value = text
        await pilot.press("enter")
        await settle(pilot, app)
        assert app.return_code is None and app.screen is app.review_screen
        assert app.queue.current_image == 1
        assert f"no image matching {text!r} in this queue" in said
        await pilot.press("g", "#", "2", "enter")  # the prompt still goes where it is told
        await settle(pilot, app)
        assert app.queue.current_image == 2


@pytest.mark.parametrize("key", ["f", "x", "r"])
async def test_a_dialog_open_while_the_terminal_is_squeezed_to_a_few_columns_does_not_end_the_review(app_store,
                                                                                                    key):
    """A pane squeezed to a few columns (a tmux split, a window dragged small) while the flag, reject
    or relabel dialog was open left its option list no width: Textual's wrapping of the options
    raised ValueError ('range() arg 3 must not be zero') and the review ended with a traceback."""
    app, store = app_store
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await pilot.press(key)
        await settle(pilot, app)
        await pilot.resize_terminal(8, 5)
        await settle(pilot, app)
        await pilot.resize_terminal(100, 30)
        await settle(pilot, app)
        assert app.return_code is None
        if key == "r":
            await pilot.press(*"cat", "enter")
        else:
            await pilot.press("1", "enter")
        await settle(pilot, app)
    a = store.annotation(1)
    assert a.status == {"f": "flagged", "x": "rejected", "r": "relabeled"}[key]


def _pending(fd: int) -> bytes:
    """What can be read from ``fd`` now, without waiting."""
    import os

    os.set_blocking(fd, False)
    try:
        return os.read(fd, 1024)
    except BlockingIOError:
        return b""
    finally:
        os.set_blocking(fd, True)


def test_keys_typed_while_the_review_closes_are_neither_echoed_nor_left_for_the_shell():
    import os
    import termios
    import time
    from types import SimpleNamespace

    from labelreview.tui.app import _Typing

    master, slave = os.openpty()  # a real terminal: the review's is the slave side
    try:
        before = termios.tcgetattr(slave)
        assert before[3] & termios.ECHO
        typing = _Typing(slave)
        driver = SimpleNamespace(attrs_before=termios.tcgetattr(slave))  # what Textual gives back at exit
        typing.mute(driver)
        termios.tcsetattr(slave, termios.TCSANOW, driver.attrs_before)  # (as Textual's driver does)
        os.write(master, b"jjjj\n")  # typed while the review saves to git
        time.sleep(0.05)
        assert b"j" not in _pending(master), "echoed on the shell's line"
        typing.restore()
        assert termios.tcgetattr(slave) == before, "the terminal is given back as it was"
        assert _pending(slave) == b"", "left for the shell to run"
        os.write(master, b"ls\n")  # and what is typed after that is the shell's again, echoed
        time.sleep(0.05)
        assert b"ls" in _pending(master) and _pending(slave) == b"ls\n"
    finally:
        os.close(master)
        os.close(slave)


def test_the_end_of_the_review_does_not_wait_for_a_picture_still_being_decoded():
    """Textual runs its thread workers (decode, prefetch) in the event loop's executor, which the
    end of the app waited for: q took as long as the decode in progress (a 9000x9000 PNG being
    prefetched: 0.8-1.1 s after q instead of 0.3-0.4 s, measured in tmux)."""
    import asyncio
    import threading
    import time

    from labelreview.tui.app import DaemonThreads

    release = threading.Event()
    started = threading.Event()
    futures = {}

    def decode() -> str:  # a decode that cannot be interrupted
        started.set()
        release.wait(30)
        return "decoded"

    async def review() -> None:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(DaemonThreads(max_workers=1))
        futures["running"] = loop.run_in_executor(None, decode)
        futures["queued"] = loop.run_in_executor(None, lambda: "never started")
        assert started.wait(5)  # (the one thread is busy: the second call waits in the queue)

    t0 = time.monotonic()
    try:
        asyncio.run(review())  # (asyncio.run shuts the default executor down, as the app's end does)
        took = time.monotonic() - t0
        workers = [t for t in threading.enumerate() if t.name.startswith("labelreview-worker")]
        assert took < 2.0, f"the end waited {took:.1f} s for the decode"
        assert workers and all(t.daemon for t in workers), "Python's exit would wait for them"
        assert futures["queued"].cancelled()
    finally:
        release.set()


def test_the_review_threads_run_work_in_order_and_hand_back_results_and_errors():
    from labelreview.tui.app import DaemonThreads

    pool = DaemonThreads(max_workers=2)
    try:
        assert [f.result(5) for f in [pool.submit(pow, 2, n) for n in range(10)]] == [2 ** n for n in range(10)]
        failing = pool.submit(int, "not a number")
        with pytest.raises(ValueError):
            failing.result(5)
    finally:
        pool.shutdown()
    with pytest.raises(RuntimeError):
        pool.submit(pow, 2, 2)


async def test_classes_and_reasons_an_admin_adds_while_the_review_is_open_are_offered(app_store):
    """The picker's classes were read once, when the review opened; the reasons until the next
    decision: a class added to labelreview.toml meanwhile could not be picked until a restart."""
    app, store = app_store
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await pilot.press("r")
        await pilot.pause()
        assert "zebra" not in app.screen.shown
        await pilot.press("escape")
        await settle(pilot, app)
        # An admin edits the config of the open store (the file, as with an editor or a sync).
        set_config(store.root, classes=["zebra"], flag_reasons=["blurry", "other"],
                   reject_reasons=["not-a-zebra"])
        await pilot.press("r", *"zebr")
        await pilot.pause()
        assert app.screen.shown == ["zebra"]
        await pilot.press("enter")
        await settle(pilot, app)
        assert store.annotation(1).category == "zebra"
        await pilot.press("f", "1", "enter")  # reason 1 of the new list, no comment
        await settle(pilot, app)
        assert (store.annotation(1).status, store.annotation(1).reason) == ("flagged", "blurry")
        await pilot.press("x", "1", "enter")
        await settle(pilot, app)
    assert (store.annotation(1).status, store.annotation(1).reason) == ("rejected", "not-a-zebra")


async def test_a_narrow_terminal_gives_the_picture_half_the_width(sample_store, open_app):
    """At 40 columns the side panel (44 wide) left the picture one column. Under 72 columns the
    panel takes half; at 80 and more it keeps its 44 columns."""
    from labelreview.tui.widgets.image_view import ImageView

    app, _ = open_app(sample_store)
    async with app.run_test(size=(40, 24)) as pilot:
        await settle(pilot, app)
        picture, side = app.screen.query_one(ImageView), app.screen.query_one("#side")
        assert picture.size.width >= 18 and side.size.width <= 22
        assert "#1 dog" in rendered(app)  # the side panel still shows the label
        await pilot.resize_terminal(100, 30)
        await settle(pilot, app)
        assert app.screen.query_one("#side").size.width == 44 - 1  # (its left border)
