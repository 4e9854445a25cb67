# Shared fixtures live in tests/plugins/*, one module per area, so their owners never edit the same file.
import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

pytest_plugins = ["tests.plugins.sandbox", "tests.plugins.media", "tests.plugins.s3"]
