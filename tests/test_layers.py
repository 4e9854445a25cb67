"""The import graph: every arrow points down, no package reaches into another's private modules.

The layers, top to bottom (README "Layout"): a package may import only packages of lower layers,
and a module whose name starts with `_` only from its own package. Layers up to the service layer
import no Prefect. The checks read the source with `ast` (lazy imports inside functions count too),
so they need nothing installed and fail on the first new violation, as the probes below show.
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Layer of each top-level package. Same-layer packages do not import each other.
LAYERS: dict[str, int] = {
    "deployments": 7,  # entry points: CLI, listener daemon, up, bootstrap, demo
    "flows": 6,  # Prefect flows: composition only
    "tasks": 5,  # Prefect tasks: retries, rate limits, artifacts, logging; the shell's composition root
    "publishing": 4,  # the service layer, no Prefect
    "transcode": 3,  # core (may use TikTok's own limits from tiktok/)
    "ledger": 3,  # core
    "sandbox": 3,  # core: an emulator of TikTok, independent of the client it tests on purpose
    "photos": 3,  # core: images prepared for TikTok photo posts (Pillow)
    "tiktok": 2,  # core: the Content Posting API client and TikTok's constants
    "tiktok_pipeline": 1,  # kernel: the settings model and the error protocol
}
#: Packages that would import the Prefect framework if they could not be told apart by layer.
NO_PREFECT_UP_TO = LAYERS["publishing"]
#: Code that uses the packages without being one: only the private-module rule applies to it, and
#: tests/<package>/ (that package's own tests) may test its private modules.
CLIENTS = ("tests", "bench", "conftest.py")
#: Within the core, the one sanctioned edge between packages of one layer band.
ALLOWED = {("transcode", "tiktok"), ("ledger", "tiktok")}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    target: str  # the imported module (or module.name), dotted
    line: int

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.target}"


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(root: Path, path: Path) -> list[Import]:
    """Every import in one file, relative ones resolved, `from a import b` also as `a.b`."""
    module = _module_name(root, path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [Import(module, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            found.append(Import(module, source, node.lineno))
            found += [Import(module, f"{source}.{alias.name}", node.lineno) for alias in node.names]
    return found


def packages(root: Path) -> list[str]:
    return sorted(p.parent.name for p in root.glob("*/__init__.py") if p.parent.name not in CLIENTS)


def _sources(root: Path, top: str) -> list[Path]:
    where = root / top
    return [where] if where.is_file() else sorted(where.rglob("*.py"))


def _private(target: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in target.split(".")[1:])


def _tested_package(root: Path, path: Path) -> str | None:
    """tests/<package>/... are that package's own tests: they may test its private modules."""
    parts = path.relative_to(root).parts
    return parts[1] if len(parts) > 2 and parts[0] == "tests" and parts[1] in LAYERS else None


def violations(root: Path) -> list[str]:
    """Every breach of the layering under `root`, one line each (empty when the graph is clean)."""
    problems = [f"package {name} has no layer in tests/test_layers.py" for name in packages(root) if name not in LAYERS]
    for top in [*packages(root), *CLIENTS]:
        for path in _sources(root, top) if (root / top).exists() else []:
            for imp in imports_of(root, path):
                target_top = imp.target.split(".")[0]
                if top not in LAYERS:  # tests, bench: only the private-module rule applies
                    if target_top in LAYERS and _private(imp.target) and target_top != _tested_package(root, path):
                        problems.append(f"{imp}: a private module of {target_top}")
                    continue
                if target_top == "prefect" and LAYERS[top] <= NO_PREFECT_UP_TO:
                    problems.append(f"{imp}: Prefect in a layer that must not know it")
                if target_top not in LAYERS or target_top == top:
                    continue
                if LAYERS[target_top] >= LAYERS[top] and (top, target_top) not in ALLOWED:
                    problems.append(f"{imp}: {top} (layer {LAYERS[top]}) may not import {target_top} (layer {LAYERS[target_top]})")
                if _private(imp.target):
                    problems.append(f"{imp}: a private module of {target_top}")
    return sorted(set(problems))


def test_every_import_points_down_and_no_package_reaches_into_another() -> None:
    assert violations(ROOT) == []


def test_every_package_of_the_checkout_is_checked() -> None:
    assert set(packages(ROOT)) == set(LAYERS)


def test_the_kernel_imports_nothing_of_the_project() -> None:
    project = set(LAYERS) - {"tiktok_pipeline"}
    found = [str(i) for p in _sources(ROOT, "tiktok_pipeline") for i in imports_of(ROOT, p) if i.target.split(".")[0] in project]
    assert found == []


# The probes: a tree with one new violation each must be reported, so the check above can fail.


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name in LAYERS:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
    for relative, text in files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(textwrap.dedent(text))
    return tmp_path


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"tasks/steps.py": "from flows.publish import publish_video\n"}, "tasks (layer 5) may not import flows (layer 6)"),
        ({"tiktok_pipeline/cli.py": "def main():\n    import deployments\n"}, "tiktok_pipeline (layer 1) may not import deployments"),
        ({"ledger/_x.py": "from sandbox import serve\n"}, "ledger (layer 3) may not import sandbox (layer 3)"),
        ({"flows/publish.py": "from tasks._context import ledger\n"}, "a private module of tasks"),
        ({"flows/publish.py": "from tasks import _context\n"}, "a private module of tasks"),
        ({"tests/test_x.py": "from sandbox._server import bind_socket\n"}, "a private module of sandbox"),
        ({"tests/flows/test_x.py": "from tasks._runtime import x\n"}, "a private module of tasks"),
        ({"publishing/rules.py": "from prefect import task\n"}, "Prefect in a layer that must not know it"),
        ({"tiktok/_client.py": "import prefect.logging\n"}, "Prefect in a layer that must not know it"),
        ({"reports/__init__.py": ""}, "package reports has no layer"),
        ({"publishing/sub/__init__.py": "", "publishing/sub/x.py": "from ...flows import drafts\n"}, "publishing (layer 4) may not import flows"),
    ],
    ids=["upward", "kernel-upward-lazy", "same-layer", "private-module", "private-name", "tests-private",
         "other-package-tests-private",
         "prefect-in-service-layer", "prefect-in-core", "unknown-package", "relative-upward"],
)
def test_a_new_violation_is_caught(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    found = violations(_tree(tmp_path, files))
    assert any(expected in line for line in found), found


def test_allowed_imports_are_not_reported(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "flows/publish.py": "from tasks import runtime\nfrom publishing import PublishRequest\n",
        "transcode/_plan.py": "from tiktok import MAX_VIDEO_BYTES\nfrom transcode._models import Policy\n",
        "tasks/runtime.py": "from prefect import task\n",
        "tests/test_y.py": "from tasks import runtime\nfrom publishing.services import Services\n",
        "tests/ledger/test_z.py": "from ledger._migrate import alembic_config\n",
    })
    assert violations(root) == []
