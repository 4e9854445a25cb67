"""The service layer, without Prefect: what a caller asks for, what it gets back, and the rules between.

    request = PublishRequest(source="s3://media/clip.mp4", accounts=["brand"], privacy_level="SELF_ONLY")
    photos = PhotoPostRequest(images=["s3://media/1.jpg", "s3://media/2.jpg"], accounts=["brand"],
                              title="Two", privacy_level="SELF_ONLY")   # the publish-photos flow's
    result: PublishResult  # one per account
    verdict(results)       # Verdict(ok, message): the run's state and the message naming what failed
"""

from publishing._form import NO_ACCOUNT_DESCRIPTION, account_choices, request_schema, with_account_choices
from publishing._keys import (
    UNFETCHED_PREFIX,
    post_idempotency_key,
    request_json,
    stored_request,
    unfetched_idempotency_key,
)
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
from publishing._photo_models import PhotoPostRequest
from publishing._names import (
    accounts_label,
    deferred_run_name,
    photo_run_name,
    publish_run_name,
    release_run_name,
    s3_object_run_name,
    source_name,
)
from publishing._outcome import (
    TIMED_STEPS,
    Verdict,
    done_label,
    failure_reason,
    is_done,
    link_or_error,
    post_description,
    post_markdown,
    summary_rows,
    verdict,
)

__all__ = [
    "NO_ACCOUNT_DESCRIPTION",
    "MAX_CAPTION_UTF16",
    "SUCCESS_STATES",
    "TIMED_STEPS",
    "UNFETCHED_PREFIX",
    "CapPolicy",
    "PhotoPostRequest",
    "PublishMode",
    "PublishRequest",
    "PublishResult",
    "SourceAction",
    "StepTiming",
    "Verdict",
    "account_choices",
    "accounts_label",
    "deferred_run_name",
    "done_label",
    "failure_reason",
    "is_done",
    "link_or_error",
    "post_description",
    "post_idempotency_key",
    "photo_run_name",
    "post_markdown",
    "publish_run_name",
    "release_run_name",
    "request_schema",
    "request_json",
    "s3_object_run_name",
    "source_name",
    "stored_request",
    "summary_rows",
    "unfetched_idempotency_key",
    "verdict",
    "with_account_choices",
]
