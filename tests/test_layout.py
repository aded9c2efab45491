"""The house rules of the layout, checked on the source: services/ knows nothing of Discord, cogs/ holds only
extensions, ui/ never reaches up into cogs/ or bot.py, and no module imports itself back in a circle."""

from __future__ import annotations

import ast
from pathlib import Path

from ui import flux_bot as bot

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("bot.py", "cli", "cogs", "services", "ui")


def product_modules() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for part in PRODUCT:
        for path in [ROOT / part] if part.endswith(".py") else sorted((ROOT / part).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            modules[name] = path
    return modules


def imports_of(path: Path) -> set[str]:
    """Every module named by an import in the file, TYPE_CHECKING blocks included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_services_import_nothing_from_discord_cogs_or_ui():
    for name, path in product_modules().items():
        if name.startswith("services."):
            bad = {m for m in imports_of(path) if m.split(".")[0] in ("discord", "cogs", "ui", "bot")}
            assert not bad, f"{name} imports {sorted(bad)}"


def test_ui_never_reaches_up_into_cogs_or_the_bot():
    for name, path in product_modules().items():
        if name.startswith("ui."):
            bad = {m for m in imports_of(path) if m.split(".")[0] in ("cogs", "bot")}
            assert not bad, f"{name} imports {sorted(bad)}"


def test_every_module_in_cogs_is_a_loaded_extension():
    cogs = {name for name in product_modules() if name.startswith("cogs.")}
    assert cogs == set(bot.EXTENSIONS)
    for name in cogs:
        tree = ast.parse(product_modules()[name].read_text(encoding="utf-8"))
        assert any(isinstance(n, ast.AsyncFunctionDef) and n.name == "setup" for n in tree.body), name


def test_no_import_circles():
    modules = product_modules()
    graph = {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}
    done: set[str] = set()

    def visit(name: str, trail: list[str]) -> None:
        if name in trail:
            raise AssertionError("import circle: " + " -> ".join([*trail[trail.index(name) :], name]))
        if name in done:
            return
        for target in sorted(graph[name]):
            visit(target, [*trail, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


def test_no_cog_is_looked_up_by_name():
    for name, path in product_modules().items():
        assert "get_cog(" not in path.read_text(encoding="utf-8"), name


def test_no_comment_points_outside_the_repository():
    """Every reference a reader meets can be followed in the repository (no ../shared/docs of a build machine)."""
    files = [*product_modules().values(), *(ROOT / "services").rglob("*.toml")]
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert "../" not in text and "shared/docs" not in text, path


# The layers of services/, bottom first. A module may import from its own layer and the ones below, never from
# one above: the core can be read (and changed) from the bottom up.
SERVICE_LAYERS = (
    ("text", "secrets", "errors", "money", "locales", "loopwatch", "malloc", "gc_tuning"),
    ("limits", "failures"),
    ("store", "cometapi"),
    ("rules",),
    ("delivery", "metrics", "imaging"),
    ("jobs", "metrics_server"),
    ("config",),
)


def service_layer(module: str) -> int:
    part = module.split(".")[1]
    return next(n for n, layer in enumerate(SERVICE_LAYERS) if part in layer)


def test_the_folders_of_services_are_layers_no_import_runs_back_up():
    modules = product_modules()
    for name, path in modules.items():
        if not name.startswith("services.") or name == "services":
            continue
        for imported in imports_of(path):
            if imported.startswith("services.") and imported in modules:
                assert service_layer(imported) <= service_layer(name), f"{name} imports {imported}, a layer above it"


def test_every_part_of_services_has_a_layer():
    parts = {name.split(".")[1] for name in product_modules() if name.startswith("services.")}
    assert parts == {part for layer in SERVICE_LAYERS for part in layer}


def test_no_test_module_imports_another():
    """Shared test code lives in tests/helpers.py, tests/campaign.py, cli/harness.py and conftest.py, so a test
    module can be read, moved or deleted alone."""
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        others = sorted(m for m in imports_of(path) if m.startswith("tests.test_"))
        assert not others, f"{path.name} imports {others}: move what they share to tests/helpers.py"


def test_nothing_outside_tests_imports_from_tests():
    """The product, its tools and the fakes stand on their own: tests/ may be left out (the Docker image does)."""
    outside = [*product_modules().values(), *(ROOT / "fakes").rglob("*.py"), *(ROOT / "bench").rglob("*.py")]
    for path in sorted(outside):
        found = sorted(m for m in imports_of(path) if m == "tests" or m.startswith("tests."))
        assert not found, f"{path.relative_to(ROOT)} imports {found}"
