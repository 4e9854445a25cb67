# Shared fixtures live in tests/plugins/*, one module per area, so their owners never edit the same file.
import atexit
import os
import shutil
import tempfile

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# A Prefect home of the test session's own (results, memo store): never `make up`'s .prefect/.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="tiktok-pipeline-tests-prefect-")
atexit.register(shutil.rmtree, os.environ["PREFECT_HOME"], True)
# Every run reads its retry settings when it starts (tasks.policy.with_retries): tests retry at once, and fewer times.
os.environ.setdefault("TIKTOK_PIPELINE_TASK_RETRY_BACKOFF", "0")
os.environ.setdefault("TIKTOK_PIPELINE_TASK_RETRIES", "2")
# A run that left a post claimed (a simulated crash) is taken over after 10 s instead of 2 min.
os.environ.setdefault("TIKTOK_PIPELINE_CLAIM_LEASE", "10")
# Runs transcode at the worker's priority: `make test` keeps both cores busy with its own processes
# (pytest workers, Prefect servers), behind which a niced ffmpeg would crawl. The niceness itself is
# tested in tests/transcode/test_run.py and measured by bench/contention.py.
os.environ.setdefault("TIKTOK_PIPELINE_TRANSCODE_NICENESS", "0")

pytest_plugins = [
    "tests.plugins.sandbox",
    "tests.plugins.media",
    "tests.plugins.s3",
    "tests.plugins.postgres",
    "tests.plugins.prefect_server",
]
