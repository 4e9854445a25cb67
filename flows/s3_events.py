"""publish-s3-object: publish an S3 object the way its uploader asked, from an S3 event.

How the object, its metadata, its sidecar and the prefix defaults become a PublishRequest is the
service layer's (`publishing.s3_events`); this flow reads it on the worker and runs publish-video.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.client.schemas.objects import State
from prefect.runtime import flow_run as current_flow_run
from prefect.states import Completed, Failed

from flows.publish import conclude, publish_video
from publishing import PublishRequest, s3_object_run_name
from publishing.s3_events import S3RequestInvalid, normalize_etag, read_object, request_for_object
from publishing.sources import S3Location, s3_client
from tasks import runtime
from tasks.policy import retry_options, with_retries


@task(name="read-s3-request", **retry_options())
def read_s3_request(bucket: str, key: str, etag: str) -> PublishRequest | None:
    """The PublishRequest for this version of the object; None when a newer version replaced it."""
    current = runtime.settings()
    allowed = current.bucket_allow_list
    if allowed and bucket not in allowed:  # the listener refuses these too; a run started by hand is checked here
        raise S3RequestInvalid(
            f"s3://{bucket}/{key}: bucket {bucket!r} is not one TIKTOK_PIPELINE_S3_BUCKETS / S3_PREFIXES allow "
            f"({', '.join(allowed)}); nothing was read or posted",
            detail={"source": f"s3://{bucket}/{key}", "problems": [f"bucket {bucket!r} not allowed"]},
        )
    snapshot = read_object(s3_client(current), S3Location(bucket, key))
    if snapshot.etag != normalize_etag(etag):
        get_run_logger().warning(
            "%s changed since the event (ETag %s, now %s): the newer version's own event publishes it",
            snapshot.location.uri, normalize_etag(etag), snapshot.etag,
        )
        return None
    return request_for_object(
        snapshot, prefix_defaults=current.s3_prefix_defaults, require_sidecar=current.s3_require_sidecar
    )


def _s3_run_name() -> str:
    parameters = current_flow_run.parameters
    return s3_object_run_name(str(parameters.get("bucket", "")), str(parameters.get("key", "")))


@flow(name="publish-s3-object", flow_run_name=_s3_run_name, persist_result=True)
def publish_s3_object(bucket: str, key: str, etag: str) -> State:
    """Publish one uploaded S3 object (bucket, key, ETag from its s3:ObjectCreated event) as its
    sidecar, metadata and prefix defaults ask; fails with a clear message when they are invalid.

    Runs publish-video as a subflow and ends as it did: Failed, naming the accounts not posted and
    why, when any was not; the result is the list of PublishResult either way.
    """
    request = with_retries(read_s3_request, runtime.settings())(bucket, key, etag)
    if request is None:
        return Completed(message=f"s3://{bucket}/{key} changed since the event: the newer version's own run publishes it",
                         data=[])
    get_run_logger().info("publishing %s to %s", request.source, ", ".join(request.accounts))
    state = publish_video(request, return_state=True)
    results = state.result(raise_on_failure=False)
    if isinstance(results, list):
        return conclude(results)
    message = f"the publish-video subflow ended {state.name} without results: {state.message or results}"
    get_run_logger().error(message)
    return Failed(message=message)
