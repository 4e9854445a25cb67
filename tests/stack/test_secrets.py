"""No credential at rest in plaintext, nor in any output: after a publish from the command line and
one by the worker (a deployment run) on the `make up` stack, every file the stack wrote (the ledger,
the Prefect database with its logs, artifacts, parameters, events and results, every log; a PostgreSQL
database is scanned in a `pg_dump`) and every
command's output is scanned for every secret involved. The sandbox lists what it issued or received
(`/_sandbox/secrets`: access and refresh tokens, OAuth codes, PKCE verifiers, upload tokens, the
client secret); the encryption key comes from the stack's environment. Expected: zero hits.

Left out of the scan, on purpose: the stack's `env` file (the configuration a user writes, the one
place the client secret and the encryption key belong), the sandbox's own log and storage (that is
TikTok's side, not ours), and the tokens' encrypted columns, which hold no plaintext to find.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import httpx

from tests.plugins.prefect_server import Stack
from tests.stack.groups import STACK_GROUP

pytestmark = STACK_GROUP

SAMPLE = "s3://media/samples/sample.mp4"
NOT_OURS = ("env", "sandbox.log", "sample.mp4")


def _secrets(stack: Stack) -> dict[str, list[str]]:
    issued = httpx.get(f"{stack.sandbox_url}/_sandbox/secrets", timeout=10).json()
    issued["encryption_key"] = [k for k in stack.env["TIKTOK_PIPELINE_ENCRYPTION_KEY"].split(",") if k]
    issued["client_secrets"] = sorted({*issued["client_secrets"], stack.env["TIKTOK_PIPELINE_CLIENT_SECRET"]})
    return issued


def _stack_files(stack: Stack) -> list[Path]:
    sandbox_storage = Path(httpx.get(f"{stack.sandbox_url}/_sandbox/state", timeout=10).json()["storage_dir"])
    return [path for path in stack.state_dir.rglob("*")
            if path.is_file() and path.name not in NOT_OURS and sandbox_storage not in path.parents]


def test_no_secret_is_stored_or_printed_in_plaintext(prefect_stack: Stack) -> None:
    caption = f"secrets {uuid.uuid4().hex[:8]}"
    outputs: dict[str, str] = {}
    done = prefect_stack.cli("publish", SAMPLE, "--account", "main", "--caption", caption, "--privacy", "SELF_ONLY",
                             timeout=600)
    outputs["publish"] = done.stdout + done.stderr
    run = prefect_stack.create_run("publish-video/publish-video", {"request": {
        "source": SAMPLE, "accounts": ["main"], "privacy_level": "SELF_ONLY", "caption": f"{caption} by the worker"}})
    assert prefect_stack.wait_for_run(run["id"])["state"]["type"] == "COMPLETED"
    outputs["run logs"] = "\n".join(prefect_stack.api.logs(run["id"]))
    listed = prefect_stack.cli("posts", "list", "--json")
    outputs["posts list --json"] = listed.stdout + listed.stderr
    post_ids = [str(p["id"]) for p in json.loads(listed.stdout) if p["caption"].startswith(caption)]
    assert len(post_ids) == 2, listed.stdout
    for args in (*(("posts", "show", i) for i in post_ids), *(("posts", "show", i, "--json") for i in post_ids),
                 ("accounts", "list"), ("accounts", "export", "main")):
        shown = prefect_stack.cli(*args)
        outputs[" ".join(args)] = shown.stdout + shown.stderr

    secrets = _secrets(prefect_stack)
    # Each kind was really issued and used in this stack, so a scan finding nothing means something.
    assert all(secrets[kind] for kind in ("access_tokens", "refresh_tokens", "authorization_codes", "pkce_verifiers",
                                          "upload_tokens", "client_secrets", "encryption_key")), secrets
    hits = []
    for path in _stack_files(prefect_stack):
        data = path.read_bytes()
        hits += [f"{kind} in {path.relative_to(prefect_stack.state_dir)}"
                 for kind, values in secrets.items() for value in values if value.encode() in data]
    if prefect_stack.prefect_database:  # the server's database is PostgreSQL, not a file under state_dir
        dump = subprocess.run(["pg_dump", "--data-only", "--host", "127.0.0.1", "--username", "postgres",
                               prefect_stack.prefect_database], capture_output=True, check=True, timeout=300).stdout
        assert b"COPY public.flow_run " in dump and b"COPY public.log " in dump, dump[:2000]
        hits += [f"{kind} in the Prefect database" for kind, values in secrets.items() for value in values
                 if value.encode() in dump]
    for name, text in outputs.items():
        hits += [f"{kind} in the output of `{name}`" for kind, values in secrets.items() for value in values if value in text]
    assert hits == [], sorted(set(hits))
