"""Flow run names from the request, and the account name rule (pure; checked against a real ledger)."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import AccountConflict, Ledger, LedgerInputInvalid, TokenGrant, generate_key
from publishing import accounts_label, deferred_run_name, publish_run_name, release_run_name, s3_object_run_name, source_name
from publishing._names import AccountNameInvalid, check_account_name


def test_the_file_name_of_every_kind_of_source() -> None:
    assert source_name("s3://media/samples/sample.mp4") == "sample.mp4"
    assert source_name("s3://media/a%20dir/take%20%231.mp4") == "take #1.mp4"
    assert source_name("https://cdn.example.com/v/clip.mov?sig=abc") == "clip.mov"
    assert source_name("/srv/videos/final cut.mp4") == "final cut.mp4"
    assert source_name("file:///srv/videos/x.webm") == "x.webm"
    assert source_name("https://cdn.example.com/") == "https://cdn.example.com/"


def test_long_names_keep_their_start_and_extension() -> None:
    name = source_name("s3://b/" + "episode-" * 10 + "final.mp4")
    assert len(name) == 40 and name.startswith("episode-episode") and name.endswith("final.mp4") and "…" in name


def test_run_names_name_the_video_and_the_accounts() -> None:
    assert publish_run_name("s3://media/samples/sample.mp4", ["main", "private"]) == "sample.mp4 → main, private"
    assert publish_run_name("s3://m/clip.mp4", ["main"], "hold") == "clip.mp4 → main (hold)"
    assert publish_run_name("s3://m/clip.mp4", ["main"], "direct") == "clip.mp4 → main"
    assert accounts_label(["a", "b", "c", "d", "e"]) == "a, b, c +2 more"
    assert accounts_label(["x" * 60]).endswith("x") and len(accounts_label(["x" * 60])) == 24
    assert accounts_label([]) == "no account"


def test_names_of_the_other_publish_flows() -> None:
    assert release_run_name(12, "inbox") == "release post 12 → inbox"
    assert deferred_run_name(12) == "deferred post 12"
    assert s3_object_run_name("media", "incoming/clip.mp4") == "clip.mp4 from s3://media/incoming/"
    assert s3_object_run_name("media", "clip.mp4") == "clip.mp4 from s3://media/"


# --- control characters never reach a run name ------------------------------------------------------

def test_a_source_with_control_or_bidi_characters_makes_a_one_line_name() -> None:
    # An S3 key may hold them (it stays publishable); the run name shows them as U+FFFD, in the order written.
    assert source_name("s3://media/in/\u202e4pm.mp4") == "\ufffd4pm.mp4"
    assert publish_run_name("s3://m/a\x1b[31m\nb.mp4", ["main"]) == "a\ufffd[31m\ufffdb.mp4 → main"
    assert s3_object_run_name("media", "in\x1b/clip.mp4") == "clip.mp4 from s3://media/in\ufffd/"
    assert accounts_label(["a\u2066b"]) == "a\ufffdb"


# --- account names: the ledger's rule, checked before anything is asked of TikTok ---------------------

VALID_NAMES = ["main", "a", "Brand.2", "b-1_x", "9", "a" * 64]
INVALID_NAMES = {
    "../evil": "account name '../evil' is not valid: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
    "": "account name '' is not valid",
    "a" * 65: "account name 'aaaa",
    ".hidden": "account name '.hidden' is not valid",
    "-rf": "account name '-rf' is not valid",
    "two words": "account name 'two words' is not valid",
    " main": "account name ' main' is not valid",
    "évil": "account name 'évil' is not valid",
    "a/b": "account name 'a/b' is not valid",
    "main\n": "account name: U+000A (LINE FEED) at character 5: control characters (newline and tab included)",
    "ma\x00in": "account name: U+0000 (NULL) at character 3",
    "\u202emain": "account name: U+202E (RIGHT-TO-LEFT OVERRIDE) at character 1: bidirectional",
}


def test_valid_account_names_are_kept_as_they_are() -> None:
    for name in VALID_NAMES:
        assert check_account_name(name) is name


@pytest.mark.parametrize("name, message", INVALID_NAMES.items(), ids=[repr(n)[:20] for n in INVALID_NAMES])
def test_invalid_account_names_are_refused_saying_why(name: str, message: str) -> None:
    with pytest.raises(AccountNameInvalid) as caught:
        check_account_name(name)
    assert str(caught.value).startswith(message) and caught.value.final


def test_a_huge_name_is_not_repeated_whole() -> None:
    with pytest.raises(AccountNameInvalid) as caught:
        check_account_name("x" * 100_000)
    assert len(str(caught.value)) < 300 and "…" in str(caught.value)


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Ledger:
    return Ledger(f"sqlite:///{tmp_path_factory.mktemp('names') / 'ledger.sqlite3'}", generate_key())


def ledger_takes(ledger: Ledger, name: str) -> bool:
    grant = TokenGrant(access_token="a", expires_in=60, refresh_token="r", refresh_expires_in=60, open_id=uuid.uuid4().hex)
    try:
        ledger.upsert_account(name, grant)
    except LedgerInputInvalid:
        return False
    except AccountConflict:  # the name is taken by another open_id: the name itself was accepted
        return True
    return True


names = st.text(st.sampled_from(list("aZ09._-/ é") + ["\n", "\t", "\x00", "\u202e"]), max_size=6) | st.text(
    st.sampled_from(list("ab1._-")), min_size=62, max_size=67)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=names)
def test_the_check_agrees_with_the_ledger(name: str, ledger: Ledger) -> None:
    """What the check accepts the ledger stores; what the ledger refuses the check refuses first."""
    try:
        check_account_name(name)
        accepted = True
    except AccountNameInvalid:
        accepted = False
    takes = ledger_takes(ledger, name)
    if accepted:
        assert takes, name
    elif takes:
        # The one difference: the ledger's `$` lets a trailing newline through ("main\n"); the check refuses it.
        assert name.endswith("\n") and check_account_name(name[:-1]) == name[:-1], repr(name)
