"""Review mode, without Prefect: TikTok's posting screen as a form a person fills before anything is sent.

A request with `review: true` (from the UI, an S3 prefix's defaults, another pipeline) is ingested,
checked against fresh creator_info and transcoded; then each account's post waits as a hold draft
(`open_for_review`) while a person fills one form per account, built from that creator's
creator_info (`account_form`), as TikTok's Content Sharing Guidelines require of a posting screen:

- "Posting as <nickname>" and the caption, editable;
- privacy among the creator's own `privacy_level_options`, with no default;
- comment / duet / stitch switches off by default, and absent where the creator disabled them;
- the commercial content disclosure, off by default, with "Your brand" and "Branded content"
  worded as TikTok words them, and the label each gives the post;
- the Music Usage Confirmation (and the Branded Content Policy for branded content), and a consent
  switch: without it nothing is sent and the post stays held (releasable later).

`reviewed_request` turns an answer into the request that is posted (or None: kept held), refusing
an inconsistent one with `ReviewInvalid`; `record_review` writes the choices to the post's audit
trail and releases the draft. A post once reviewed is not asked again: a re-run of the request (a
crash retry) or a deferred post goes on with the recorded choices (`reviewed_before`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema, create_model

from ledger import BEFORE_INIT_STATES, Post, PostNotFound, PostState, PublishMode
from publishing._keys import post_idempotency_key, request_json
from publishing._models import PublishRequest
from publishing.posting import CreatorCheck, PreparedMedia, open_post, post_info_of
from publishing.services import Services
from publishing.sources import FetchedSource
from tiktok import MAX_CAPTION_UTF16, CreatorInfo, apply_creator_rules
from tiktok_pipeline.errors import PipelineError

#: The audit-trail event of a review's answer; its data holds the request that is posted.
REVIEWED_EVENT = "reviewed"
#: The one of an answer that keeps the post held.
KEPT_HELD_EVENT = "review_declined"

MUSIC_USAGE_URL = "https://www.tiktok.com/legal/page/global/music-usage-confirmation/en"
BRANDED_CONTENT_URL = "https://www.tiktok.com/legal/page/global/bc-policy/en"
#: TikTok's words for the declaration under the posting screen (content-sharing guidelines).
MUSIC_DECLARATION = f"By posting, you agree to TikTok's [Music Usage Confirmation]({MUSIC_USAGE_URL})."
BRANDED_DECLARATION = (f"By posting, you agree to TikTok's [Branded Content Policy]({BRANDED_CONTENT_URL}) and "
                       f"[Music Usage Confirmation]({MUSIC_USAGE_URL}).")
PROCESSING_NOTICE = ("After you post, TikTok may take a few minutes to process the video before it appears "
                     "on the profile.")

#: How the privacy levels read in TikTok's posting screen.
PRIVACY_LABELS = {
    "PUBLIC_TO_EVERYONE": "Everyone",
    "MUTUAL_FOLLOW_FRIENDS": "Friends",
    "FOLLOWER_OF_CREATOR": "Followers",
    "SELF_ONLY": "Only me",
}


class ReviewInvalid(PipelineError):
    """The reviewer's answer cannot be posted as it is (e.g. branded content set to Only me): the form
    is asked again, saying why."""

    retryable = False


class ReviewTicket(BaseModel):
    """One account's post in review: its ledger id, and whether a person still has to answer for it."""

    account: str
    post_id: int
    post_key: str
    #: The request the post goes on with when it was reviewed before (JSON); None while a review is due.
    reviewed: dict[str, Any] | None = None
    #: Nothing to review: the post went further before (published, failed, initialized...).
    settled: bool = False

    @property
    def pending(self) -> bool:
        return self.reviewed is None and not self.settled


# --- the posts under review -------------------------------------------------------------------------


def reviewed_before(services: Services, post: Post) -> dict[str, Any] | None:
    """The request a review of this post recorded (JSON), unless it was kept held since."""
    for event in reversed(services.ledger.post_events(post.id)):
        if event.kind == KEPT_HELD_EVENT:
            return None
        if event.kind == REVIEWED_EVENT and isinstance((event.data or {}).get("request"), dict):
            return dict(event.data["request"])
    return None


def open_for_review(services: Services, request: PublishRequest, check: CreatorCheck, source: FetchedSource,
                    post_key: str | None = None) -> ReviewTicket:
    """The account's post, recorded before anything is asked: a new one waits as a hold draft
    (media ready, nothing sent to TikTok), so that a review that never comes leaves it releasable."""
    key = post_key or post_idempotency_key(request, check.account, source.sha256)
    try:  # as a review left it (its mode and caption may be the reviewer's)
        post = services.ledger.get_post_by_idempotency_key(key)
    except PostNotFound:
        post, _ = open_post(services, request.model_copy(update={"mode": PublishMode.hold}), check.account, source,
                            key, check)
    reviewed = reviewed_before(services, post) if post.mode is not PublishMode.hold else None
    ticket = ReviewTicket(account=check.account, post_id=post.id, post_key=key, reviewed=reviewed)
    if post.state not in BEFORE_INIT_STATES and not (post.state is PostState.failed and post.publish_id is None):
        return ticket.model_copy(update={"settled": True})
    if reviewed is not None:
        return ticket
    if post.state is PostState.queued:
        services.ledger.transition(post, PostState.media_ready, message="media ready: waiting for a review in the "
                                   "Prefect UI before anything is sent to TikTok")
    return ticket


# --- the form -----------------------------------------------------------------------------------------


def creator_of(check: CreatorCheck) -> CreatorInfo:
    return CreatorInfo.model_validate(check.creator or {})


def _who(check: CreatorCheck) -> str:
    name = check.nickname or check.account
    return f"{name} (@{check.username})" if check.username else name


def account_form(check: CreatorCheck, request: PublishRequest) -> type[BaseModel]:
    """The form of one account's post, from that creator's creator_info (see the module doc)."""
    creator = creator_of(check)
    fields: dict[str, Any] = {
        "caption": (str, Field(request.caption, title="Caption", max_length=MAX_CAPTION_UTF16,
                               description="With #hashtags and @mentions, as it will appear on TikTok")),
    }
    if request.mode is not PublishMode.inbox:
        options = tuple(creator.privacy_level_options)
        if not options:
            raise ReviewInvalid(f"{_who(check)} offers no privacy level in creator_info: nothing can be posted now",
                                detail={"account": check.account})
        labels = ", ".join(f"{PRIVACY_LABELS.get(o, o)} = {o}" for o in options)
        fields["privacy_level"] = (Literal[options], Field(  # type: ignore[valid-type]
            title="Who can view this video", description=f"Required, no default: {labels}. Branded content cannot "
            "be Only me (SELF_ONLY)."))
    for interaction, disabled in (("comment", creator.comment_disabled), ("duet", creator.duet_disabled),
                                  ("stitch", creator.stitch_disabled)):
        if not disabled:  # the creator turned it off in TikTok: not offered at all
            fields[f"allow_{interaction}"] = (bool, Field(False, title=f"Allow {interaction}s" if interaction ==
                                                          "comment" else f"Allow {interaction.capitalize()}"))
    fields["disclose_commercial_content"] = (bool, Field(False, title="Disclose video content", description=(
        "Turn on to disclose that this video promotes goods or services in exchange for something of value. "
        "Your video could promote yourself, a third party, or both.")))
    fields["your_brand"] = (bool, Field(False, title="Your brand", description=(
        "You are promoting yourself or your own business. This video will be classified as Brand Organic "
        "and labeled \"Promotional content\".")))
    fields["branded_content"] = (bool, Field(False, title="Branded content", description=(
        "You are promoting another brand or a third party. This video will be classified as Branded "
        "Content and labeled \"Paid partnership\". Branded content cannot be private (Only me).")))
    fields["consent"] = (bool, Field(False, title="Post to TikTok now", description=(
        f"{MUSIC_DECLARATION} With branded content: {BRANDED_DECLARATION} Leave this off to keep the post "
        "held: nothing is sent to TikTok, and it can be released later.")))
    return create_model(f"Review_{check.account}", __config__=ConfigDict(
        title=f"Posting as {_who(check)}", extra="forbid"), **fields)


def review_fields(checks: Sequence[CreatorCheck], request: PublishRequest) -> dict[str, Any]:
    """The fields of the whole review: one form per account, under the account's name, its JSON schema
    given inline (Prefect's form titles a referenced sub-form by its field name only)."""
    fields: dict[str, Any] = {}
    for check in checks:
        form = account_form(check, request)
        fields[check.account] = (Annotated[form, WithJsonSchema(form.model_json_schema())], ...)
    return fields


def media_summary(media: PreparedMedia, request: PublishRequest) -> str:
    fitted = {"remux": "already TikTok-ready (remuxed, not re-encoded)", "audio-only": "video kept, audio re-encoded",
              "kept": "the media an earlier run prepared"}.get(media.path_taken, f"transcoded to 1080x1920, fit: {request.fit.value}")
    return f"{media.duration:.1f} s · {media.size / 1e6:.1f} MB · {fitted}"


def review_description(checks: Sequence[CreatorCheck], request: PublishRequest, media: PreparedMedia | None,
                       images: Mapping[str, str], problem: str | None = None) -> str:
    """The Markdown above the form: who posts, the preview, TikTok's notices; `images` maps "poster" and
    "contact_sheet" to URLs the browser can show (data: URLs do)."""
    lines = []
    if problem:
        lines += [f"**The last answer could not be posted: {problem}** Correct it and submit again.", ""]
    lines += ["## Review before posting to TikTok", ""]
    for check in checks:
        avatar = creator_of(check).creator_avatar_url
        lines.append(f"- Posting as **{check.nickname or check.account}**" + (f" (@{check.username})" if check.username
                     else "") + f" — account `{check.account}`" + (f" ![avatar]({avatar})" if avatar else ""))
    lines.append("")
    if "poster" in images:
        lines.append(f"![poster frame]({images['poster']}) ![contact sheet]({images['contact_sheet']})")
        lines.append("")
    if media is not None:
        lines += [f"**Video:** {media_summary(media, request)}", ""]
    lines += [PROCESSING_NOTICE, "", MUSIC_DECLARATION,
              "For each account: choose who can view the video, turn on what you allow, disclose commercial "
              "content if any, and turn on **Post to TikTok now** to post; leave it off to keep the post held."]
    return "\n".join(lines)


# --- the answer ---------------------------------------------------------------------------------------


def reviewed_request(request: PublishRequest, check: CreatorCheck, answer: Mapping[str, Any]) -> PublishRequest | None:
    """The request posted for this account, as the reviewer chose it; None when consent was left off
    (the post stays held). Raises `ReviewInvalid` naming what to change."""
    if not answer.get("consent"):
        return None
    creator = creator_of(check)
    who = _who(check)
    disclose = bool(answer.get("disclose_commercial_content"))
    your_brand, branded = disclose and bool(answer.get("your_brand")), disclose and bool(answer.get("branded_content"))
    if disclose and not (your_brand or branded):
        raise ReviewInvalid(f"{who}: with the disclosure on, choose Your brand, Branded content or both "
                            "(or turn the disclosure off)", detail={"account": check.account})
    privacy = answer.get("privacy_level")
    if branded and privacy == "SELF_ONLY":
        raise ReviewInvalid(f"{who}: branded content cannot be private (Only me): choose another privacy level",
                            detail={"account": check.account})
    update = {
        "caption": answer.get("caption", request.caption),
        "privacy_level": privacy if request.mode is not PublishMode.inbox else request.privacy_level,
        "disable_comment": creator.comment_disabled or not answer.get("allow_comment"),
        "disable_duet": creator.duet_disabled or not answer.get("allow_duet"),
        "disable_stitch": creator.stitch_disabled or not answer.get("allow_stitch"),
        "brand_organic_toggle": your_brand,
        "brand_content_toggle": branded,
    }
    try:
        return PublishRequest.model_validate({**request.model_dump(mode="json"), **update})
    except ValidationError as exc:
        problems = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
        raise ReviewInvalid(f"{who}: {problems}", detail={"account": check.account}) from None


def recheck(check: CreatorCheck, request: PublishRequest) -> CreatorCheck:
    """The account's check for the reviewed request: the PostInfo sent is the one the reviewer chose,
    under the creator's rules (a disabled interaction stays disabled)."""
    if request.mode is PublishMode.inbox or check.creator is None:
        return check
    checked = apply_creator_rules(post_info_of(request), creator_of(check))
    return check.model_copy(update={"post_info": checked.post_info.model_dump(mode="json"), "notes": checked.notes})


def record_review(services: Services, ticket: ReviewTicket, request: PublishRequest | None,
                  answer: Mapping[str, Any], *, flow_run_id: str | None = None) -> Post:
    """Write the reviewer's choices to the post's audit trail; a post to be sent leaves hold for the
    request's mode, one kept held stays a hold draft."""
    book = services.ledger
    data = {"answer": dict(answer), "flow_run_id": flow_run_id}
    if request is None:
        return book.note(ticket.post_id, KEPT_HELD_EVENT, "review: consent left off, kept held (nothing sent to TikTok)",
                         data)
    privacy = request.privacy_level.value if request.privacy_level else "chosen in the inbox"
    return book.release_reviewed(ticket.post_id, request.mode, request.caption, message=(
        f"reviewed: {request.mode.value} post, privacy {privacy}"
        + (f", labeled \"{request.commercial_label}\"" if request.commercial_label else "")),
        data={**data, "request": request_json(request)})


def kept_held(services: Services, ticket: ReviewTicket, why: str) -> Post:
    """A post whose review never came (expired, the run cancelled): it stays a hold draft, and says why."""
    return services.ledger.note(ticket.post_id, KEPT_HELD_EVENT, why)
