"""Provisioning for the S3 → SQS listener: the queue, its dead-letter queue, the bucket's notification.

`wire_bucket` creates or updates them (idempotent; `tiktok-pipeline listen --wire-bucket` and
`make up` run it); `dead_letter_policy` reads back where the daemon sends a message that keeps
failing, and refuses a queue that has nowhere to send it. Nothing here receives a message: that is
`deployments.listener.daemon`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from tiktok_pipeline.errors import PipelineError
from tiktok_pipeline.settings import Settings

QUEUE_NAME = "tiktok-pipeline-s3-events"
#: Id of the bucket notification `wire_bucket` owns; other notifications of the bucket are kept.
NOTIFICATION_ID = "tiktok-pipeline-s3-events"


class ListenerError(PipelineError):
    """The listener cannot run as configured (no queue, no dead-letter queue, bad defaults)."""


def sqs_client(queue_url: str, region: str) -> Any:
    """SQS client for `queue_url`: the endpoint is the queue URL's host (AWS, moto, ElasticMQ)."""
    parsed = urlparse(queue_url)
    return boto3.client(
        "sqs",
        endpoint_url=f"{parsed.scheme}://{parsed.netloc}",
        region_name=region,
        config=BotoConfig(retries={"max_attempts": 5, "mode": "standard"}),
    )


# --- wiring ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueWiring:
    queue_url: str
    queue_arn: str
    dead_letter_queue_url: str
    dead_letter_queue_arn: str

    def env(self) -> dict[str, str]:
        """Environment for `tiktok-pipeline listen`."""
        return {"TIKTOK_PIPELINE_S3_QUEUE_URL": self.queue_url}


def _queue(sqs: Any, name: str, attributes: dict[str, str]) -> tuple[str, str]:
    """URL and ARN of queue `name`, created if missing, with `attributes` set either way (SQS
    refuses CreateQueue for an existing queue whose attributes differ)."""
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    except sqs.exceptions.QueueDoesNotExist:
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def wire_bucket(
    bucket: str,
    *,
    endpoint_url: str | None = None,
    region: str = "us-east-1",
    queue_name: str = QUEUE_NAME,
    max_receives: int = 5,
    visibility_timeout: int = 60,
    prefix: str = "",
) -> QueueWiring:
    """Create (or update) the queue, its dead-letter queue and the bucket notification.

    Idempotent. The queue's RedrivePolicy sends a message to `<queue_name>-dead-letter` after
    `max_receives` receives; its policy lets S3 send from `bucket` and from the buckets wired to it
    before (the listener's default allow-list); the bucket notifies every s3:ObjectCreated:* (under
    `prefix`) and the listener filters keys itself (S3 filters are case-sensitive and take one
    suffix per rule).
    `endpoint_url` None means AWS; moto's server serves S3 and SQS on one endpoint.
    """
    try:
        return _wire(bucket, boto3.client("sqs", endpoint_url=endpoint_url, region_name=region),
                     boto3.client("s3", endpoint_url=endpoint_url, region_name=region),
                     queue_name, max_receives, visibility_timeout, prefix)
    except (ClientError, BotoCoreError) as exc:
        raise ListenerError(f"could not wire s3://{bucket} to the queue {queue_name}: {exc}") from exc


def _wire(
    bucket: str, sqs: Any, s3: Any, queue_name: str, max_receives: int, visibility_timeout: int, prefix: str
) -> QueueWiring:
    dlq_url, dlq_arn = _queue(sqs, f"{queue_name}-dead-letter", {"MessageRetentionPeriod": str(14 * 24 * 3600)})
    previous = _current_policy(sqs, queue_name)  # read first: moto drops it on any SetQueueAttributes
    queue_url, queue_arn = _queue(sqs, queue_name, {
        "VisibilityTimeout": str(visibility_timeout),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receives)}),
    })
    policy = _policy_with(previous, queue_arn, bucket)
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})
    current = s3.get_bucket_notification_configuration(Bucket=bucket)
    current.pop("ResponseMetadata", None)
    queues = [q for q in current.get("QueueConfigurations", []) if q.get("Id") != NOTIFICATION_ID]
    ours: dict[str, Any] = {"Id": NOTIFICATION_ID, "QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}
    if prefix:
        ours["Filter"] = {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}}
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={**current, "QueueConfigurations": [*queues, ours]}
    )
    return QueueWiring(queue_url, queue_arn, dlq_url, dlq_arn)


#: Sid of the queue-policy statement `wire_bucket` owns (the buckets S3 may send from).
_POLICY_SID = "s3-notifications"


def _current_policy(sqs: Any, queue_name: str) -> str | None:
    try:
        url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
    except sqs.exceptions.QueueDoesNotExist:
        return None
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"]).get("Attributes", {}).get("Policy")


def _policy_with(current: str | None, queue_arn: str, bucket: str) -> dict[str, Any]:
    """The queue policy letting S3 send from `bucket` as well as from the buckets wired before
    (wiring a second bucket to the queue must not take the first one's permission away); other
    statements are kept as they are."""
    try:
        document = json.loads(current) if current else {}
    except ValueError:
        document = {}
    statements = document.get("Statement", []) if isinstance(document, dict) else []
    statements = statements if isinstance(statements, list) else [statements]
    ours = [st for st in statements if isinstance(st, dict) and st.get("Sid") == _POLICY_SID]
    others = [st for st in statements if st not in ours]
    wired = [b for st in ours for b in policy_buckets(json.dumps({"Statement": [st]}))]
    arns = [f"arn:aws:s3:::{name}" for name in dict.fromkeys([*wired, bucket])]
    return {
        "Version": "2012-10-17",
        "Statement": [*others, {
            "Sid": _POLICY_SID,
            "Effect": "Allow",
            "Principal": {"Service": "s3.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": arns[0] if len(arns) == 1 else arns}},
        }],
    }


# --- dead letters ------------------------------------------------------------------------------


#: SQS's default MaximumMessageSize (body and attributes), assumed when the dead-letter queue's own
#: cannot be read.
DEFAULT_MAX_MESSAGE_BYTES = 262_144


@dataclass(frozen=True)
class DeadLetterPolicy:
    """After `max_receives` receives a message that still fails goes to `queue_url`, which takes
    messages of up to `max_message_bytes` (body and attributes together)."""

    max_receives: int
    queue_url: str
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES


def dead_letter_policy(sqs: Any, queue_url: str, settings: Settings) -> DeadLetterPolicy:
    """The queue's RedrivePolicy (its maxReceiveCount and target), else the settings.

    Without a dead-letter queue a message that can never succeed would either be retried until
    SQS's retention drops it or be deleted: both lose it, so the listener refuses to start.
    """
    max_receives = settings.s3_max_receives
    dlq_url = settings.s3_dead_letter_queue_url
    try:
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"]).get("Attributes", {})
        if "RedrivePolicy" in attributes:
            redrive = json.loads(attributes["RedrivePolicy"])
            max_receives = int(redrive["maxReceiveCount"])
            if not dlq_url:
                name = str(redrive["deadLetterTargetArn"]).rsplit(":", 1)[-1]
                account = str(redrive["deadLetterTargetArn"]).split(":")[4]
                dlq_url = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
    except (ClientError, BotoCoreError) as exc:
        raise ListenerError(f"cannot read the attributes of {queue_url}: {exc}") from exc
    if not dlq_url:
        raise ListenerError(
            f"{queue_url} has no dead-letter queue: give it a RedrivePolicy or set "
            "TIKTOK_PIPELINE_S3_DEAD_LETTER_QUEUE_URL (messages that keep failing must go somewhere)"
        )
    try:
        size = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["MaximumMessageSize"])["Attributes"]
        max_bytes = int(size["MaximumMessageSize"])
    except (ClientError, BotoCoreError, KeyError, ValueError):  # e.g. no sqs:GetQueueAttributes on it
        max_bytes = DEFAULT_MAX_MESSAGE_BYTES
    return DeadLetterPolicy(max_receives=max_receives, queue_url=dlq_url, max_message_bytes=max_bytes)


# --- buckets -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BucketAllowList:
    """The buckets whose notifications the listener publishes, and where that list comes from."""

    buckets: tuple[str, ...]
    source: str  # the setting or the queue policy, for the start-up log line


def policy_buckets(policy: str) -> tuple[str, ...]:
    """The buckets a queue policy lets S3 send from: `aws:SourceArn` conditions naming one bucket
    (`arn:aws:s3:::NAME`, as `wire_bucket` writes them). Wildcards name no bucket."""
    try:
        document = json.loads(policy)
    except (ValueError, RecursionError):
        return ()
    statements = document.get("Statement", []) if isinstance(document, dict) else []
    found: list[str] = []
    for statement in statements if isinstance(statements, list) else [statements]:
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        conditions = statement.get("Condition")
        for operator in ("ArnEquals", "ArnLike", "StringEquals", "StringLike"):
            clause = conditions.get(operator) if isinstance(conditions, dict) else None
            arns = clause.get("aws:SourceArn") if isinstance(clause, dict) else None
            for arn in arns if isinstance(arns, list) else [arns]:
                if isinstance(arn, str) and arn.startswith("arn:aws:s3:::"):
                    bucket = arn.removeprefix("arn:aws:s3:::")
                    if bucket and not any(ch in bucket for ch in "*?/"):
                        found.append(bucket)
    return tuple(dict.fromkeys(found))


def bucket_allow_list(sqs: Any, queue_url: str, settings: Settings) -> BucketAllowList:
    """TIKTOK_PIPELINE_S3_BUCKETS, else the buckets TIKTOK_PIPELINE_S3_PREFIXES names, else those the
    queue's policy lets S3 send from; refuses to start when none of them names a bucket."""
    if settings.s3_buckets:
        return BucketAllowList(settings.bucket_allow_list, "TIKTOK_PIPELINE_S3_BUCKETS")
    if named := settings.bucket_allow_list:
        return BucketAllowList(named, "the buckets TIKTOK_PIPELINE_S3_PREFIXES names")
    try:
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["Policy"]).get("Attributes", {})
    except (ClientError, BotoCoreError) as exc:
        raise ListenerError(f"cannot read the policy of {queue_url}: {exc}") from exc
    if buckets := policy_buckets(attributes.get("Policy", "")):
        return BucketAllowList(buckets, "the queue policy")
    raise ListenerError(
        f"cannot tell which buckets' notifications to publish: set TIKTOK_PIPELINE_S3_BUCKETS (the policy of "
        f"{queue_url} names no bucket, and TIKTOK_PIPELINE_S3_PREFIXES no s3://BUCKET/ prefix)"
    )
