"""refresh-tokens as deployed: a run of the deployment on the `make up` worker leaves the
account-health table (what the UI shows under the run's Artifacts) for the connected accounts."""

from __future__ import annotations

import json

from tasks.maintenance import ACCOUNT_HEALTH_KEY
from tests.plugins.prefect_server import Stack
from tests.stack.groups import STACK_GROUP

pytestmark = STACK_GROUP


def test_refresh_tokens_leaves_the_account_health_table(prefect_stack: Stack) -> None:
    run = prefect_stack.create_run("refresh-tokens/refresh-tokens", {})
    done = prefect_stack.wait_for_run(run["id"], timeout=240)
    assert done["state"]["type"] == "COMPLETED", (done["state"], prefect_stack.api.logs(run["id"]))
    (table,) = [a for a in prefect_stack.api.artifacts(run["id"]) if a["key"] == ACCOUNT_HEALTH_KEY]
    assert table["type"] == "table" and table["description"].endswith("all able to post")
    rows = {row["account"]: row for row in json.loads(table["data"])}
    assert {"main", "private"} <= set(rows)
    assert rows["main"]["nickname"] == "Studio Main" and rows["main"]["status"] == "active"
    assert rows["main"]["this run"] in ("fresh", "refreshed")
    assert rows["main"]["access token expires"].endswith(" h)") and "/" in rows["main"]["direct posts left today"]
