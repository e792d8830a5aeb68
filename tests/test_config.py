"""labelreview.toml as people really write it: by hand, in any editor, with typos. Each mistake is a
message naming the setting and what it should be, or it works; never a setting silently ignored."""

from __future__ import annotations

import pytest

from helpers import _sample, files_of, run, sample_images, sample_store, templates  # noqa: F401


def write(store, text: str | bytes) -> None:
    path = store / "labelreview.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())


def status(store) -> tuple[int, str]:
    rc, _out, err = run("status", "--store", store)
    assert "Traceback" not in err, err
    return rc, err


def test_a_config_saved_with_a_byte_order_mark_or_windows_line_ends_is_read(sample_store):
    # Notepad saves UTF-8 with a BOM: every command said "invalid TOML: Invalid statement (at line 1,
    # column 1)", which names nothing to fix.
    write(sample_store, b'\xef\xbb\xbf[project]\r\nname = "x"\r\n\tclasses = [\t"zebra",\r\n "yak"]\r\n')
    assert status(sample_store) == (0, "")
    rc, out, err = run("relabel", "1", "zebra", "--store", sample_store)
    assert rc == 0 and "dog pending -> zebra relabeled" in out, err


@pytest.mark.parametrize("text,message", [
    ('[project]\nclasses = ["", "cat"]', 'project.classes has an empty name (item 1 of the list); remove it'),
    ('[project]\nflag_reasons = ["other", " "]', 'project.flag_reasons has an empty name (item 2 of the list)'),
    ('[project]\nreject_reasons = [true]',
     'project.reject_reasons must be a list of names, e.g. reject_reasons = ["false-positive", "other"]'),
    ('[project]\nname = ["x"]', 'project.name must be text in quotes'),
    ('[image_roots]\n20260101-a = ["/data"]', 'image_roots.20260101-a must be text in quotes'),
    ('[review]\nlease_seconds = true', 'review.lease_seconds must be a number of seconds, e.g. lease_seconds = 120'),
    ('[review]\nlease_seconds = nan', 'review.lease_seconds must be a number of seconds'),
    ('[review]\nlease_seconds = inf', 'review.lease_seconds must be a number of seconds'),
    ('[keys.accept]\nkey = "y"', 'keys.accept must name a key, or several in a comma list, e.g. accept = "y"'),
    ('[keys]\naccept = {key = "y"}', 'keys.accept must name a key'),
], ids=["empty-class", "blank-reason", "bool-reason", "list-name", "list-root", "bool-lease", "nan-lease",
        "inf-lease", "key-table", "key-inline-table"])
def test_a_value_of_the_wrong_kind_is_a_message_naming_the_setting(sample_store, text, message):
    # Each was taken as something else without a word: classes = ["", "cat"] offered a class with no
    # name (`relabel 1 ""` then relabeled 1 to the class it had, and exports listed a nameless class),
    # true a lease of 1 s, nan a lease that never held, [keys.accept] the key "{'key': 'y'}".
    write(sample_store, text)
    before = files_of(sample_store)
    rc, out, err = run("relabel", "1", "", "--store", sample_store)
    assert rc == 1 and "Traceback" not in err, err
    assert f"labelreview.toml: {message}" in err, err
    assert files_of(sample_store) == before


def test_keys_may_be_given_as_a_list_or_a_digit(sample_store):
    # next_image = ["n", "right"] was bound to the key "['n', 'right']", which no key press is.
    from labelreview.store import Store

    write(sample_store, '[keys]\nnext_image = ["n", "right"]\naccept = 7\n[review]\nlease_seconds = "30"\n')
    with Store.open(sample_store) as store:
        assert store.config.keys == {"next_image": "n,right", "accept": "7"}
        assert store.config.lease_seconds == 30


@pytest.mark.parametrize("text,message", [
    ('[review]\ndubble = true', "unknown setting review.dubble; did you mean 'double'? [review] may hold double, "
                                "lease_seconds"),
    ('[roles]\nreviewer = ["nobody"]', "unknown setting roles.reviewer; did you mean 'reviewers'? [roles] may hold "
                                       "reviewers, adjudicators, admins, importers, exporters"),
    ('[project]\nclasess = ["zebra"]', "unknown setting project.clasess; did you mean 'classes'?"),
    ('classes = ["zebra"]\n[project]\nname = "x"', "classes must be under [project] (it is above every table); "
                                                  "move it there"),
    ('double = true\n[project]\nname = "x"', "double must be under [review]"),
    ('[projekt]\nclasses = ["zebra"]', "unknown table [projekt]; did you mean 'project'? the tables are [project], "
                                       "[image_roots], [roles], [review], [keys]"),
    ('[role]\nreviewers = ["nobody"]', "unknown table [role]; did you mean 'roles'?"),
], ids=["review-typo", "role-typo", "project-typo", "above-project", "above-review", "table-typo", "table-singular"])
def test_a_misspelt_setting_or_table_is_named_not_ignored(sample_store, text, message):
    # Each was ignored without a word, and the store worked otherwise than its team wrote: [roles]
    # reviewer = ["nobody"] let everybody decide, [review] dubble = true left double review off.
    write(sample_store, text)
    before = files_of(sample_store)
    rc, out, err = run("accept", "1", "--store", sample_store)
    assert rc == 1 and "Traceback" not in err, err
    assert f"labelreview.toml: {message}" in err, err
    assert files_of(sample_store) == before


def test_the_template_and_the_old_name_of_double_review_are_known(sample_store):
    from labelreview.store import Store

    assert status(sample_store) == (0, "")  # (the template init writes, every table in it)
    write(sample_store, '[review]\nblind_double_review = true\n[image_roots]\n"any-import-id" = "/x"\n'
                        '[keys]\nany_binding_id = "y"\n')
    with Store.open(sample_store) as store:
        assert store.config.double_review is True
