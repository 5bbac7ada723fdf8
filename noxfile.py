"""Sessions: `nox` runs lint, typecheck, tests, packaging, docs, examples; `nox -s bench` measures."""

from __future__ import annotations

import shutil
from pathlib import Path

import nox

nox.options.sessions = [
    "lint",
    "typecheck",
    "tests",
    "packaging",
    "plugin_example",
    "docs",
    "example_fastapi",
    "example_django",
    "deploy",
]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = False

ROOT = Path(__file__).parent
PLUGINS = [ROOT / "src" / "commproc_sms", ROOT / "src" / "commproc_email"]
#: A third-party style channel plugin, built and tested as its author would.
VOICE = ROOT / "examples" / "commproc-voice"
PYPROJECT = nox.project.load_toml("pyproject.toml")
EXAMPLES = ROOT / "examples"


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
    # The benchmark scripts import each other as siblings, not as a package.
    session.run("mypy", "--explicit-package-bases", "benchmarks", env={"MYPYPATH": "src:benchmarks"})


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
    """The benchmark of docs/performance.md; `nox -s bench -- --cases 'sms-*' --rounds 9`, `-- --help`."""
    _install_project(session)
    session.run("python", "benchmarks/pipeline.py", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    _install_project(session)
    session.run("commproc", "demo", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site (mkdocs.yml), built with --strict: a broken link, anchor or docstring fails it.

    mkdocstrings reads the docstrings from src/ without importing the packages,
    so only the site's own tools are installed. The pages' examples run in `tests`.
    """
    session.install(*nox.project.dependency_groups(PYPROJECT, "docs"))
    site = ROOT / "build" / "site"
    session.run("mkdocs", "build", "--strict", "--site-dir", str(site), env={"NO_MKDOCS_2_WARNING": "1"})


def _example(session: nox.Session, name: str) -> Path:
    """Install commproc, then the example and its test group; returns its folder."""
    folder = EXAMPLES / name
    _install_project(session)
    session.install(str(folder))
    session.install(
        *nox.project.dependency_groups(nox.project.load_toml(str(folder / "pyproject.toml")), "test")
    )
    return folder


@nox.session
def example_fastapi(session: nox.Session) -> None:
    """examples/fastapi-webhooks: signed webhooks in, through moto's SQS, into the real processors."""
    folder = _example(session, "fastapi-webhooks")
    session.chdir(folder)
    session.run("pytest", *session.posargs)


@nox.session
def example_django(session: nox.Session) -> None:
    """examples/django: migrate, commproc's schema, the management command on moto's SQS, the admin.

    Needs the PostgreSQL of $DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/test);
    Django creates and drops a test database of its own there.
    """
    folder = _example(session, "django")
    session.chdir(folder)
    session.run("pytest", *session.posargs)


@nox.session
def deploy(session: nox.Session) -> None:
    """deploy/: cfn-lint on the SAM template, its mapping template through the real processors, the
    Lambda function, the compose worker's configuration run for real, and the images.

    The images are built where a docker engine answers; elsewhere the Dockerfiles are linted
    (hadolint, in the tests) and this session says so.
    """
    _install_project(session, "deploy")
    session.chdir(ROOT / "deploy")
    session.run("pytest", "-p", "no:cacheprovider", *session.posargs)
    docker = shutil.which("docker")
    # `docker info` prints "Server Version" only when an engine answers.
    info = docker and session.run(docker, "info", silent=True, success_codes=[0, 1], external=True)
    if "Server Version" not in str(info):
        session.log("no docker engine here: the Dockerfiles were linted with hadolint, not built")
        return
    for dockerfile, tag in (
        ("deploy/Dockerfile", "commproc-worker"),
        ("deploy/lambda.Dockerfile", "commproc-lambda"),
    ):
        session.run(docker, "build", "-f", dockerfile, "-t", f"{tag}:ci", str(ROOT), external=True)
