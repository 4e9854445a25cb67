"""The publish-video flow's parameter and result models live in the service layer (`publishing`)."""

from publishing import (  # noqa: F401 (re-exported for callers of the flows)
    MAX_CAPTION_UTF16,
    SUCCESS_STATES,
    CapPolicy,
    PublishMode,
    PublishRequest,
    PublishResult,
    SourceAction,
    StepTiming,
)
