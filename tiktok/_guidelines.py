"""TikTok's content-sharing guidelines applied to one post, as a pure function.

Before every post the creator's fresh `creator_info` decides what may be sent: privacy must be one
of the creator's options, interactions the creator disabled stay disabled, the video may not be
longer than the creator's maximum. The result is the `PostInfo` that will actually be sent, plus
the notes a UI should show.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tiktok._errors import DurationOverCreatorMax, PrivacyNotAllowed
from tiktok._models import CreatorInfo, PostInfo


@dataclass(frozen=True)
class CheckedPost:
    post_info: PostInfo
    notes: list[str] = field(default_factory=list)


def apply_creator_rules(post_info: PostInfo, creator: CreatorInfo, duration_s: float | None = None) -> CheckedPost:
    """The `post_info` to send for this creator, or a typed error naming the rule broken."""
    who = creator.creator_nickname or creator.creator_username or "this creator"
    if creator.privacy_level_options and post_info.privacy_level not in creator.privacy_level_options:
        raise PrivacyNotAllowed(
            f"privacy {post_info.privacy_level} is not available to {who}; "
            f"choose one of {', '.join(creator.privacy_level_options)}",
            detail={"privacy_level": str(post_info.privacy_level), "options": creator.privacy_level_options},
        )
    max_s = creator.max_video_post_duration_sec
    if duration_s is not None and max_s is not None and duration_s > max_s + 0.05:
        raise DurationOverCreatorMax(
            f"the video lasts {duration_s:.1f} s; {who} may post at most {max_s} s",
            detail={"duration_s": duration_s, "max_video_post_duration_sec": max_s},
        )
    notes: list[str] = []
    forced: dict[str, bool] = {}
    for interaction, disabled_by_creator in (
        ("comment", creator.comment_disabled),
        ("duet", creator.duet_disabled),
        ("stitch", creator.stitch_disabled),
    ):
        if disabled_by_creator and not getattr(post_info, f"disable_{interaction}"):
            forced[f"disable_{interaction}"] = True
            notes.append(f"{interaction} is disabled in {who}'s settings and stays disabled")
    checked = post_info.model_copy(update=forced) if forced else post_info
    return CheckedPost(post_info=checked, notes=notes)
