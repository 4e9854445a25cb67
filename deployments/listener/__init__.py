"""`tiktok-pipeline listen`: S3 uploads → SQS → one publish-s3-object run per object version.

- `provisioning` sets the queue up: the queue, its dead-letter queue (RedrivePolicy), the bucket's
  notification (`wire_bucket`), and reads back the dead-letter policy the daemon follows and the
  buckets it accepts (`bucket_allow_list`).
- `daemon` is the listener itself: the receive loop, the decision per message (delete, retry,
  dead-letter, release), the dispatch of runs and events, shutdown on signals.
- `keeper` is the thread that keeps received messages hidden while the daemon works on them.

See docs/s3-events.md for the decisions (late sidecars, dead letters, shutdown).
"""

from deployments.listener.daemon import (
    RECEIVES_ATTRIBUTE,
    REASON_ATTRIBUTE,
    Action,
    Listener,
    Outcome,
    Readiness,
    emit,
    logger,
    stop_on_signals,
)
from deployments.listener.keeper import VisibilityKeeper
from deployments.listener.provisioning import (
    NOTIFICATION_ID,
    QUEUE_NAME,
    BucketAllowList,
    DeadLetterPolicy,
    ListenerError,
    QueueWiring,
    bucket_allow_list,
    dead_letter_policy,
    policy_buckets,
    sqs_client,
    wire_bucket,
)

__all__ = [
    "NOTIFICATION_ID", "QUEUE_NAME", "REASON_ATTRIBUTE", "RECEIVES_ATTRIBUTE",
    "Action", "BucketAllowList", "DeadLetterPolicy", "Listener", "ListenerError", "Outcome", "QueueWiring",
    "Readiness", "VisibilityKeeper", "bucket_allow_list", "dead_letter_policy", "emit", "logger", "policy_buckets",
    "sqs_client", "stop_on_signals", "wire_bucket",
]
