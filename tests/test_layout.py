"""The layout is part of what readers rely on: the core's layers, and twins that mirror.

``shared/`` is layered (see shared/__init__.py): infrastructure → domain → security →
services, each importing only the layers before it; ``web`` holds HTTP conventions for the
apps, and no layer of the core imports it; ``runtime`` and ``cli`` sit on top. Nothing in
``shared/`` imports a web framework. The twins have a file for each concern under the same
name, and the same names for what routes need, except where one framework does the job for
you; those exceptions are listed here with the reason.
"""

import ast
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT / "shared"
FRAMEWORKS = frozenset({"fastapi", "flask", "starlette", "werkzeug", "uvicorn", "gunicorn"})
LAYERS = {"infrastructure": 0, "domain": 1, "security": 2, "services": 3}
TOP = frozenset({"runtime", "cli"})  # where the layers meet; imported by the apps alone
# Alembic's environment (env.py, versions/): not a layer, as no module imports it; Alembic
# loads the files from their directory. It reads the models' tables, so it may import the
# domain and infrastructure, and nothing else of the core: revisions are history, written
# against SQLAlchemy alone, never the service's code, which will change.
MIGRATIONS = "migrations"
MIGRATIONS_MAY_IMPORT = frozenset({"infrastructure", "domain"})

# A file one twin has and the other does not, and why.
ONLY_FASTAPI = {
    "readers.py": "the async read path for the token lookup and /health; Flask reads inline",
    "openapi.py": "declares the error answers FastAPI's generated document lists",
}
ONLY_FLASK = {"validation.py": "parsing, validating and serialising, which FastAPI does itself"}
# What routes need: the same names on both sides, but for these.
ONLY_FASTAPI_DEPS = {"get_reader": "the async read path (readers.py)"}
ONLY_FLASK_DEPS = {"close_session": "a teardown hook; FastAPI's get_session generator closes"}
ONLY_FLASK_ROUTES = {"openapi": "FastAPI serves its generated /openapi.json itself"}


def imported_modules(path: Path, source: str | None = None) -> set[str]:
    """Every module ``path`` (or ``source`` placed there) imports, by its absolute name:
    ``from ..web import cors`` in shared/domain/ names ``shared.web.cors``, as the absolute
    import would, and is held to the same rules."""
    tree = ast.parse(path.read_text(encoding="utf-8") if source is None else source)
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                module = importlib.util.resolve_name("." * node.level + module, package_of(path))
            modules.add(module)
            modules.update(f"{module}.{alias.name}" for alias in node.names)
    return modules


def package_of(path: Path) -> str:
    """The package a module file is in: shared/domain/errors.py → ``shared.domain``."""
    return ".".join(path.relative_to(ROOT).parent.parts)


def part(module: str) -> str:
    """The part of the core a module belongs to: ``shared.domain.errors`` → ``domain``."""
    return module.split(".")[1] if module.count(".") else ""


def shared_modules() -> list[Path]:
    return sorted(SHARED.rglob("*.py"))


def test_the_core_imports_no_web_framework() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            name for name in imported_modules(path) if name.split(".")[0] in FRAMEWORKS
        )
        for path in shared_modules()
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_a_relative_import_is_named_as_the_module_it_imports() -> None:
    """The layering rule must see ``from ..web import cors`` in the domain layer as it sees
    ``from shared.web import cors``; read by its dotted name only, it would slip through."""
    in_domain = SHARED / "domain" / "errors.py"
    relative = "from ..web import cors\nfrom .. import runtime\n"
    assert imported_modules(in_domain, relative) >= {"shared.web.cors", "shared.runtime"}


@pytest.mark.parametrize("path", shared_modules(), ids=lambda path: str(path.relative_to(ROOT)))
def test_each_layer_imports_only_the_layers_before_it(path: Path) -> None:
    importer = part(".".join(path.relative_to(ROOT).with_suffix("").parts))
    if importer in TOP or importer == MIGRATIONS:
        return  # the migrations: the next test
    for name in imported_modules(path):
        if not name.startswith("shared.") or (imported := part(name)) not in {*LAYERS, *TOP, "web"}:
            continue  # a data file, a sibling in the same package, or outside the core
        if importer == "web" or imported == "web":
            assert importer == imported, f"{path.name}: web and the layers stay apart ({name})"
        else:
            assert imported not in TOP, f"{path.name} imports the top ({name})"
            assert LAYERS[imported] <= LAYERS[importer], f"{path.name} imports up ({name})"


def test_the_migrations_import_only_the_models_and_their_types() -> None:
    """env.py reads the models' tables; a revision imports nothing of the service at all."""
    scripts = sorted((SHARED / MIGRATIONS).rglob("*.py"))

    def refused(path: Path) -> list[str]:
        allowed = frozenset() if path.parent.name == "versions" else MIGRATIONS_MAY_IMPORT
        modules = imported_modules(path)
        return sorted(n for n in modules if n.startswith("shared.") and part(n) not in allowed)

    assert scripts
    assert {str(path.relative_to(ROOT)): refused(path) for path in scripts if refused(path)} == {}
    # Nothing imports them: Alembic loads them by path.
    importers = [
        path
        for path in shared_modules()
        if any(part(name) == MIGRATIONS for name in imported_modules(path))
    ]
    assert importers == []


def module_names(package: str) -> set[str]:
    return {path.name for path in (ROOT / package).glob("*.py")}


def test_the_twins_have_the_same_files_for_the_same_concerns() -> None:
    fastapi_only = module_names("fastapi_app") - module_names("flask_app")
    flask_only = module_names("flask_app") - module_names("fastapi_app")
    assert (fastapi_only, flask_only) == (set(ONLY_FASTAPI), set(ONLY_FLASK))
    assert module_names("fastapi_app/routes") == module_names("flask_app/routes")


def public_callables(path: Path) -> set[str]:
    """Module-level functions and lower-case names (``bearer_token = OAuth2PasswordBearer``)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name) and t.id.islower())
    return {name for name in names if not name.startswith("_")}


def test_what_routes_need_has_the_same_names_on_both_twins() -> None:
    fastapi = public_callables(ROOT / "fastapi_app" / "deps.py")
    flask = public_callables(ROOT / "flask_app" / "deps.py")
    assert fastapi - flask == set(ONLY_FASTAPI_DEPS)
    assert flask - fastapi == set(ONLY_FLASK_DEPS)


@pytest.mark.parametrize("module", sorted(module_names("flask_app/routes") - {"__init__.py"}))
def test_route_modules_define_the_same_view_functions(module: str) -> None:
    fastapi = functions(ROOT / "fastapi_app" / "routes" / module)
    flask = functions(ROOT / "flask_app" / "routes" / module)
    assert fastapi == flask - set(ONLY_FLASK_ROUTES)


def functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    defined = (ast.FunctionDef, ast.AsyncFunctionDef)
    return {node.name for node in tree.body if isinstance(node, defined)}
