"""The service layer, without Prefect: what a caller asks for, what it gets back, and the rules between.

    request = PublishRequest(source="s3://media/clip.mp4", accounts=["brand"], privacy_level="SELF_ONLY")
    result: PublishResult  # one per account
"""

from publishing._models import (
    MAX_CAPTION_UTF16,
    SUCCESS_STATES,
    CapPolicy,
    PublishMode,
    PublishRequest,
    PublishResult,
    SourceAction,
    StepTiming,
)

__all__ = [
    "MAX_CAPTION_UTF16",
    "SUCCESS_STATES",
    "CapPolicy",
    "PublishMode",
    "PublishRequest",
    "PublishResult",
    "SourceAction",
    "StepTiming",
]
