"""Sessions: `nox` runs lint, typecheck, tests and packaging; `nox -s bench` prints figures."""

from __future__ import annotations

import shutil
from pathlib import Path

import nox

nox.options.sessions = ["lint", "typecheck", "tests", "packaging", "plugin_example"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = False

ROOT = Path(__file__).parent
PLUGINS = [ROOT / "src" / "commproc_sms", ROOT / "src" / "commproc_email"]
#: A third-party style channel plugin, built and tested as its author would.
VOICE = ROOT / "examples" / "commproc-voice"
PYPROJECT = nox.project.load_toml("pyproject.toml")


def _install_project(session: nox.Session, *groups: str) -> None:
    session.install("-e", ".[postgres,metrics]")
    # Plugins are installed for their entry points; pytest and mypy import
    # them from src/ (pytest's pythonpath, mypy's mypy_path).
    session.install(*(str(p) for p in PLUGINS))
    for group in groups:
        session.install(*nox.project.dependency_groups(PYPROJECT, group))


@nox.session
def lint(session: nox.Session) -> None:
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    # The layers of docs/architecture.md, read from the source tree's imports.
    session.run("lint-imports", "--no-cache", env={"PYTHONPATH": str(ROOT / "src")})


@nox.session
def typecheck(session: nox.Session) -> None:
    _install_project(session, "typecheck")
    # The example plugin is type-checked too: it is what plugin authors copy.
    session.run(
        "mypy", "src/commproc_core", "src/commproc_sms", "src/commproc_email", "examples/commproc-voice/src"
    )


@nox.session
def tests(session: nox.Session) -> None:
    _install_project(session, "test")
    session.run("pytest", "-m", "not packaging", *session.posargs, env={"PYTHONHASHSEED": "0"})


@nox.session
def packaging(session: nox.Session) -> None:
    """Build every sdist, then a wheel from each sdist; install them into fresh venvs and check."""
    session.install("build", "pytest")
    dist = ROOT / "build" / "packaging-dist"
    shutil.rmtree(dist, ignore_errors=True)
    projects = [ROOT, *PLUGINS, *(ROOT / "tests" / "fixtures" / "plugins").iterdir()]
    for project in projects:
        # `python -m build` builds the sdist, then the wheel from that sdist.
        session.run("python", "-m", "build", "--outdir", str(dist), str(project), silent=True)
    session.run(
        "pytest", "--noconftest", "-m", "packaging", "tests/packaging", env={"COMMPROC_DIST_DIR": str(dist)}
    )


@nox.session
def plugin_example(session: nox.Session) -> None:
    """Build commproc and the example voice plugin from sdists, install the wheels, run the plugin's tests.

    The tests import only what is installed (never src/), as a plugin
    author's would, and check that `commproc channels` lists the plugin.
    """
    session.install("build")
    dist = ROOT / "build" / "plugin-example-dist"
    shutil.rmtree(dist, ignore_errors=True)
    for project in [ROOT, *PLUGINS, VOICE]:
        # `python -m build` builds the sdist, then the wheel from that sdist.
        session.run("python", "-m", "build", "--outdir", str(dist), str(project), silent=True)

    def wheel(name: str) -> str:
        (found,) = dist.glob(f"{name}-*.whl")
        return str(found)

    voice = f"{wheel('commproc_voice')}[test]"
    session.install(wheel("commproc_core"), wheel("commproc_sms"), wheel("commproc_email"), voice)
    session.run("commproc", "channels")
    session.chdir(VOICE)
    session.run("pytest", env={"PYTHONHASHSEED": "0"})


@nox.session
def bench(session: nox.Session) -> None:
    """Throughput and queue API calls per message; `nox -s bench -- --store sqlite --events 5000`."""
    _install_project(session)
    session.run("python", "benchmarks/pipeline.py", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    _install_project(session)
    session.run("commproc", "demo", *session.posargs)
