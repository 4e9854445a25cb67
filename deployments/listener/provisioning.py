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
    `max_receives` receives; the bucket notifies every s3:ObjectCreated:* (under `prefix`) and the
    listener filters keys itself (S3 filters are case-sensitive and take one suffix per rule).
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
    queue_url, queue_arn = _queue(sqs, queue_name, {
        "VisibilityTimeout": str(visibility_timeout),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receives)}),
    })
    bucket_arn = f"arn:aws:s3:::{bucket}"
    policy = {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "s3-notifications",
            "Effect": "Allow",
            "Principal": {"Service": "s3.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": bucket_arn}},
        }],
    }
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


# --- dead letters ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeadLetterPolicy:
    """After `max_receives` receives a message that still fails goes to `queue_url`."""

    max_receives: int
    queue_url: str


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
    return DeadLetterPolicy(max_receives=max_receives, queue_url=dlq_url)
