"""The layout is a standing rule: each layer in its package, imports pointing one way, the README's table true.

Read from the source with ``ast`` (nothing is imported), so a new module or a stray import fails here
with the file and line to mend.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PACKAGES = ("accounts", "audit", "registryadmin")
LAYERS = ("accounts/access", "accounts/services", "accounts/registry", "accounts/web", "accounts/api")
# Who may not import whom (by dotted prefix); "everyone may import audit".
FORBIDDEN = {
    "accounts.access": (
        "accounts.services",
        "accounts.registry",
        "accounts.web",
        "accounts.api",
        "audit",
        "accounts.authz",
    ),
    "accounts.services": ("accounts.web", "accounts.api", "accounts.registry.views", "accounts.registry.tokens"),
    "accounts.registry": ("accounts.web", "accounts.api"),
    # The dashboard and the JSON API are two faces of the same services: neither leans on the other.
    "accounts.web": ("accounts.api",),
    "accounts.api": ("accounts.web",),
    "audit": (
        "accounts.web",
        "accounts.api",
        "accounts.registry",
        "accounts.services",
        "accounts.authz",
        "accounts.policy",
    ),
}
# Services may use these registry modules: the keys and files a registry reads, and their pure crypto.
SERVICES_MAY_USE = ("accounts.registry.htpasswd", "accounts.registry.secrets", "accounts.registry.signing")


def source_files() -> Iterator[Path]:
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(node: ast.Import | ast.ImportFrom, known: set[str]) -> list[str]:
    """The project modules an import statement names (``from accounts import services`` -> accounts.services)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    names = [f"{base}.{alias.name}" for alias in node.names]
    return [name if name in known else base for name in names]


def top_level_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for n in node.body if isinstance(n, ast.Import | ast.ImportFrom))


def is_ours(name: str) -> bool:
    return name.split(".")[0] in PACKAGES


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports at module level."""
    trees = {module_name(path): ast.parse(path.read_text(), str(path)) for path in source_files()}
    known = set(trees)
    return {
        name: {m for node in top_level_imports(tree) for m in imported_modules(node, known) if is_ours(m)}
        for name, tree in trees.items()
    }


def test_accounts_has_at_most_fifteen_top_level_modules_and_no_layer_prefixed_ones() -> None:
    modules = sorted(p.name for p in (REPO_ROOT / "accounts").glob("*.py") if p.name != "__init__.py")
    assert len(modules) <= 15, modules
    assert not [m for m in modules if re.search(r"_(urls|views|forms)\.py$", m)]
    for layer in LAYERS:
        assert (REPO_ROOT / layer / "__init__.py").is_file(), layer


@pytest.mark.parametrize("importer", sorted(FORBIDDEN))
def test_imports_point_one_way(graph: dict[str, set[str]], importer: str) -> None:
    wrong = [
        f"{module} imports {target}"
        for module, targets in graph.items()
        if module == importer or module.startswith(importer + ".")
        for target in targets
        if any(target == banned or target.startswith(banned + ".") for banned in FORBIDDEN[importer])
    ]
    assert not wrong, wrong


def test_services_use_only_the_registry_format_modules(graph: dict[str, set[str]]) -> None:
    used = {t for m, targets in graph.items() if m.startswith("accounts.services") for t in targets}
    assert {t for t in used if t.startswith("accounts.registry")} <= set(SERVICES_MAY_USE)


def test_no_two_project_modules_import_each_other_in_a_loop(graph: dict[str, set[str]]) -> None:
    done: set[str] = set()

    def visit(module: str, trail: list[str]) -> None:
        if module in trail:
            raise AssertionError("import cycle: " + " -> ".join([*trail[trail.index(module) :], module]))
        if module in done:
            return
        for target in sorted(graph.get(module, ())):
            visit(target, [*trail, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_no_project_import_hides_inside_a_function() -> None:
    """An import inside a function only dodges a cycle; AppConfig.ready is Django's documented exception."""
    hidden = []
    for path in source_files():
        tree = ast.parse(path.read_text(), str(path))
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef) or function.name == "ready":
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Import | ast.ImportFrom) and any(
                    is_ours(m) for m in imported_modules(node, set())
                ):
                    hidden.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
    assert not hidden, hidden


def readme_layout() -> dict[str, set[str]]:
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z/]+)/` \|[^|]*\| ([^|]*) \|$", section, re.M)
    return {path: set(re.findall(r"`([a-z_]+)`", modules)) for path, modules in rows}


def test_the_readme_layout_table_names_every_module_of_every_package() -> None:
    table = readme_layout()
    assert set(table) >= {
        "accounts",
        *LAYERS,
        "accounts/web/views",
        "accounts/web/forms",
        "accounts/api/views",
        "accounts/api/serializers",
        "audit",
        "registryadmin",
    }
    for folder, named in table.items():
        actual = {p.stem for p in (REPO_ROOT / folder).glob("*.py") if p.name != "__init__.py"}
        assert named == actual, f"README Layout row {folder}/: missing {actual - named}, stale {named - actual}"
