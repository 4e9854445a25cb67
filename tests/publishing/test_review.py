"""Review mode's service layer against the sandbox over real HTTP: the form each creator gets from its
fresh creator_info, what an answer turns into, and how the post waits, is released or stays held."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from ledger import PostState, PublishMode
from publishing import PublishRequest
from publishing.posting import check_creator, init_post
from publishing.review import (
    KEPT_HELD_EVENT,
    REVIEWED_EVENT,
    ReviewInvalid,
    account_form,
    open_for_review,
    recheck,
    record_review,
    review_description,
    review_fields,
    reviewed_request,
)


def _request(**fields: Any) -> PublishRequest:
    return PublishRequest(**{"source": "/videos/clip.mp4", "accounts": ["main"], "caption": "for review",
                             "review": True, **fields})


def _schema(model) -> dict[str, Any]:
    return model.model_json_schema()


def test_a_reviewed_request_needs_no_privacy_level_and_the_form_schema_agrees() -> None:
    assert _request().privacy_level is None
    with pytest.raises(ValidationError, match="privacy_level is required"):
        PublishRequest(source="/v.mp4", accounts=["main"])
    held = _request(mode="hold")  # held now, reviewed when released
    assert held.review and held.privacy_level is None


def test_the_form_offers_the_creators_privacy_options_without_default_and_only_enabled_interactions(services) -> None:
    main = account_form(check_creator(services, "main", _request()), _request())
    schema = _schema(main)
    assert schema["title"] == "Posting as Studio Main (@studio_main)"
    privacy = schema["properties"]["privacy_level"]
    assert privacy["enum"] == ["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"]
    assert "default" not in privacy and "privacy_level" in schema["required"]
    for switch in ("allow_comment", "allow_duet", "allow_stitch", "disclose_commercial_content", "your_brand",
                   "branded_content", "consent"):
        assert schema["properties"][switch]["default"] is False, switch
    assert schema["properties"]["caption"]["default"] == "for review"
    assert "Music Usage Confirmation" in schema["properties"]["consent"]["description"]
    assert '"Paid partnership"' in schema["properties"]["branded_content"]["description"]
    assert '"Promotional content"' in schema["properties"]["your_brand"]["description"]

    private = _schema(account_form(check_creator(services, "private", _request(accounts=["private"])),
                                   _request(accounts=["private"])))
    assert private["properties"]["privacy_level"]["enum"] == ["FOLLOWER_OF_CREATOR", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"]
    # The private creator disabled duets and stitches in TikTok: the form does not offer them at all.
    assert "allow_duet" not in private["properties"] and "allow_stitch" not in private["properties"]
    assert "allow_comment" in private["properties"]


def test_an_inbox_review_asks_no_privacy(services) -> None:
    request = _request(mode="inbox")
    schema = _schema(account_form(check_creator(services, "main", request), request))
    assert "privacy_level" not in schema["properties"]


def test_the_review_schema_holds_each_accounts_form_inline_with_its_title(services) -> None:
    from pydantic import create_model

    request = _request(accounts=["main", "private"])
    checks = [check_creator(services, name, request) for name in ("main", "private")]
    schema = create_model("Review", **review_fields(checks, request)).model_json_schema()
    assert "$defs" not in schema and schema["required"] == ["main", "private"]
    assert schema["properties"]["main"]["title"] == "Posting as Studio Main (@studio_main)"
    assert schema["properties"]["private"]["title"] == "Posting as Private Creator (@private_creator)"
    assert "privacy_level" in schema["properties"]["private"]["required"]


def _answer(**fields: Any) -> dict[str, Any]:
    return {"caption": "edited caption #review", "privacy_level": "MUTUAL_FOLLOW_FRIENDS", "allow_comment": True,
            "allow_duet": False, "allow_stitch": True, "disclose_commercial_content": False, "your_brand": False,
            "branded_content": False, "consent": True, **fields}


def test_an_answer_is_the_request_posted(services) -> None:
    request = _request()
    check = check_creator(services, "main", request)
    posted = reviewed_request(request, check, _answer())
    assert posted is not None
    assert (posted.caption, posted.privacy_level.value) == ("edited caption #review", "MUTUAL_FOLLOW_FRIENDS")
    assert (posted.disable_comment, posted.disable_duet, posted.disable_stitch) == (False, True, False)
    assert (posted.brand_content_toggle, posted.brand_organic_toggle) == (False, False)
    info = recheck(check, posted).post_info
    assert info["privacy_level"] == "MUTUAL_FOLLOW_FRIENDS" and info["title"] == "edited caption #review"
    assert info["disable_duet"] is True and info["disable_comment"] is False

    branded = reviewed_request(request, check, _answer(disclose_commercial_content=True, branded_content=True,
                                                       privacy_level="PUBLIC_TO_EVERYONE"))
    assert branded is not None and branded.brand_content_toggle and branded.commercial_label == "Paid partnership"
    # The brand switches count only under the disclosure, as in TikTok's screen.
    undisclosed = reviewed_request(request, check, _answer(your_brand=True))
    assert undisclosed is not None and not undisclosed.brand_organic_toggle
    assert reviewed_request(request, check, _answer(consent=False)) is None  # kept held


@pytest.mark.parametrize(("answer", "message"), [
    ({"disclose_commercial_content": True}, "choose Your brand, Branded content or both"),
    ({"disclose_commercial_content": True, "branded_content": True, "privacy_level": "SELF_ONLY"},
     "branded content cannot be private"),
    ({"caption": "x" * 2201}, "caption is 2201 UTF-16 code units"),
])
def test_an_answer_that_cannot_be_posted_is_refused_naming_the_fix(services, answer, message) -> None:
    request = _request()
    with pytest.raises(ReviewInvalid, match=message) as caught:
        reviewed_request(request, check_creator(services, "main", request), _answer(**answer))
    assert caught.value.final and str(caught.value).startswith("Studio Main (@studio_main): ")


def test_a_private_creators_disabled_interactions_stay_disabled_whatever_the_answer(services) -> None:
    request = _request(accounts=["private"])
    check = check_creator(services, "private", request)
    posted = reviewed_request(request, check, _answer(privacy_level="SELF_ONLY", allow_duet=True))
    assert posted is not None and posted.disable_duet and posted.disable_stitch


def test_the_post_waits_held_then_is_released_with_the_reviewed_choices(services, clip) -> None:
    source, prepared = clip
    request = _request()
    check = check_creator(services, "main", request)
    ticket = open_for_review(services, request, check, source)
    assert ticket.pending
    post = services.ledger.get_post(ticket.post_id)
    assert (post.mode, post.state) == (PublishMode.hold, PostState.media_ready)
    # Asked again (a re-run while the review waits): the same draft, still waiting.
    assert open_for_review(services, request, check, source) == ticket

    posted = reviewed_request(request, check, _answer())
    released = record_review(services, ticket, posted, _answer(), flow_run_id="run-1")
    assert (released.mode, released.state) == (PublishMode.direct, PostState.media_ready)
    (event,) = [e for e in services.ledger.post_events(ticket.post_id) if e.kind == REVIEWED_EVENT]
    assert event.data["answer"]["privacy_level"] == "MUTUAL_FOLLOW_FRIENDS" and event.data["flow_run_id"] == "run-1"
    # A re-run of the request goes on with the recorded choices: no second review.
    again = open_for_review(services, request, check, source)
    assert not again.pending and again.reviewed is not None and again.reviewed["caption"] == "edited caption #review"

    result = init_post(services, posted, recheck(check, posted), source, prepared, ticket.post_key)
    assert result.post_id == ticket.post_id and result.state is PostState.initialized
    assert result.privacy_level == "MUTUAL_FOLLOW_FRIENDS"
    assert open_for_review(services, request, check, source).settled  # past the review now


def test_a_declined_review_keeps_the_post_held(services, clip) -> None:
    source, _ = clip
    request = _request()
    check = check_creator(services, "main", request)
    ticket = open_for_review(services, request, check, source)
    post = record_review(services, ticket, None, _answer(consent=False))
    assert (post.mode, post.state) == (PublishMode.hold, PostState.media_ready)
    assert [e.kind for e in services.ledger.post_events(ticket.post_id)][-1] == KEPT_HELD_EVENT
    assert open_for_review(services, request, check, source).pending  # released later: reviewed again


def test_the_description_says_who_posts_shows_the_preview_and_tiktoks_notices(services, clip) -> None:
    _, prepared = clip
    request = _request()
    check = check_creator(services, "main", request)
    text = review_description([check], request, prepared, {"poster": "data:image/jpeg;base64,AAA",
                                                           "contact_sheet": "data:image/jpeg;base64,BBB"},
                              problem="Studio Main: branded content cannot be private")
    assert "Posting as **Studio Main** (@studio_main)" in text
    assert "![poster frame](data:image/jpeg;base64,AAA)" in text and "![contact sheet](data:image/jpeg;base64,BBB)" in text
    assert "3.0 s" in text and "already TikTok-ready" in text
    assert "few minutes to process" in text and "Music Usage Confirmation" in text
    assert text.startswith("**The last answer could not be posted: Studio Main: branded content cannot be private**")
