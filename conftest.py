# Shared fixtures live in tests/plugins/*, one module per area, so their owners never edit the same file.
import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# Prefect fixes retry options when the tasks are imported: tests retry at once, and fewer times.
os.environ.setdefault("TIKTOK_PIPELINE_TASK_RETRY_BACKOFF", "0")
os.environ.setdefault("TIKTOK_PIPELINE_TASK_RETRIES", "2")

pytest_plugins = [
    "tests.plugins.sandbox",
    "tests.plugins.media",
    "tests.plugins.s3",
    "tests.plugins.postgres",
    "tests.plugins.prefect_server",
]
