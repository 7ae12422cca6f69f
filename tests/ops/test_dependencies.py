"""The requirements files and the lock, read against each other and against the code.

requirements.txt is the runtime set (the API image installs it), requirements-dev.txt adds
tests, lint, load and benchmarks, and requirements.lock pins every package both install
(`make lock` writes it; README "Dependencies").
"""

import ast
import importlib.metadata
import re
import sys

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement

from tests.support.environment import PROJECT_ROOT

REQUIREMENT_FILES = ("requirements.txt", "requirements-dev.txt")
PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)")

# Named in requirements.txt though no runtime module imports them, each for a reason.
RUNTIME_WITHOUT_IMPORT = {
    "httptools": "uvicorn's C HTTP parser, used when installed",
    "uvloop": "uvicorn's event loop, used when installed",
}
RUNTIME_CODE = ("app", "scripts", "alembic")
DEV_CODE = ("tests", "bench", "locustfiles")


def normalized(name: str) -> str:
    """PEP 503: PyJWT, pyjwt and py_jwt name one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def lines_of(name: str) -> list[str]:
    lines = [raw.split("#")[0].strip() for raw in (PROJECT_ROOT / name).read_text().splitlines()]
    return [line for line in lines if line]


def pins(name: str) -> dict[str, str]:
    """{normalized name: version} of a requirements file's own `==` lines (not its -r includes)."""
    found = {}
    for line in lines_of(name):
        if line.startswith("-r "):
            continue
        match = PIN.fullmatch(line)
        assert match, f"{name}: not pinned with ==: {line}"
        assert normalized(match.group(1)) not in found, f"{name}: {line} twice"
        found[normalized(match.group(1))] = match.group(2)
    return found


def lock() -> dict[str, str]:
    return pins("requirements.lock")


def first_party() -> set[str]:
    folders = {path.name for path in PROJECT_ROOT.iterdir() if (path / "__init__.py").is_file()}
    return folders | {path.stem for path in (PROJECT_ROOT / "locustfiles").glob("*.py")}


def imported_distributions(folders: tuple[str, ...]) -> dict[str, set[str]]:
    """{normalized distribution: files} for every third-party module the code in `folders`
    imports, at the top or inside a function."""
    local = first_party()
    providers = importlib.metadata.packages_distributions()
    found: dict[str, set[str]] = {}
    for folder in folders:
        for path in (PROJECT_ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    if top in sys.stdlib_module_names or top in local:
                        continue
                    assert top in providers, f"{path.relative_to(PROJECT_ROOT)}: no installed package provides {top}"
                    for distribution in providers[top]:
                        found.setdefault(normalized(distribution), set()).add(str(path.relative_to(PROJECT_ROOT)))
    return found


def dependency_closure(names: set[str]) -> set[str]:
    """The installed packages `names` bring with them (extras left out), themselves included."""
    environment = default_environment()
    seen, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue  # not installed here: test_the_installed_packages_are_the_locked_ones
        for line in requires:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({**environment, "extra": ""}):
                todo.append(normalized(requirement.name))
    return seen


# ---- the files themselves ---------------------------------------------------------------------


@pytest.mark.parametrize("name", REQUIREMENT_FILES)
def test_every_requirement_is_pinned_with_double_equals(name):
    assert pins(name)


def test_the_dev_set_builds_on_the_runtime_set_without_repeating_it():
    assert lines_of("requirements-dev.txt")[0] == "-r requirements.txt"
    assert [line for line in lines_of("requirements-dev.txt") if line.startswith("-")] == ["-r requirements.txt"]
    twice = pins("requirements.txt").keys() & pins("requirements-dev.txt").keys()
    assert not twice, f"named in both files: {sorted(twice)}"


def test_the_lock_pins_every_line_with_double_equals():
    for line in lines_of("requirements.lock"):
        assert PIN.fullmatch(line), f"requirements.lock: {line}"
    assert lock()


@pytest.mark.parametrize("name", REQUIREMENT_FILES)
def test_every_pin_agrees_with_the_lock(name):
    locked = lock()
    for package, version in pins(name).items():
        assert package in locked, f"{package} ({name}) is missing from requirements.lock: run `make lock`"
        assert locked[package] == version, f"{name} pins {package}=={version}, the lock {locked[package]}"


def test_the_installed_packages_are_the_locked_ones():
    # `make test` installs with -c requirements.lock: a difference means the lock or this
    # virtualenv is stale (`make lock`, or `rm -rf .venv`).
    for package, version in lock().items():
        try:
            installed = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
        assert installed == version, f"{package} {installed} is installed, the lock says {version}"


# ---- the files against the code ---------------------------------------------------------------


def test_the_runtime_code_imports_only_packages_requirements_txt_names():
    runtime = pins("requirements.txt").keys()
    for distribution, files in imported_distributions(RUNTIME_CODE).items():
        assert distribution in runtime, f"{sorted(files)} import {distribution}: name it in requirements.txt"


def test_requirements_txt_names_only_what_the_runtime_code_imports():
    imported = imported_distributions(RUNTIME_CODE).keys()
    unused = pins("requirements.txt").keys() - imported - RUNTIME_WITHOUT_IMPORT.keys()
    assert not unused, f"no module of {RUNTIME_CODE} imports {sorted(unused)}: requirements-dev.txt?"


def test_tests_bench_and_locustfiles_import_only_packages_the_two_files_bring():
    named = pins("requirements.txt").keys() | pins("requirements-dev.txt").keys()
    brought = dependency_closure(set(named))
    for distribution, files in imported_distributions(DEV_CODE).items():
        assert distribution in brought, f"{sorted(files)} import {distribution}: name it in requirements-dev.txt"
