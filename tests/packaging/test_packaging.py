"""Built distributions, installed non-editable into a fresh virtual environment.

Run by `nox -s packaging`, which builds each sdist and a wheel from it into
COMMPROC_DIST_DIR first.
"""

import json
import os
import subprocess
import sys
import tarfile
import textwrap
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.packaging

CHECK = textwrap.dedent(
    """
    import json, logging, sys
    from importlib.resources import files
    from commproc_core import ProcessorFactory, ChannelLoadError
    factory = ProcessorFactory()
    out = {"listed": [i.name for i in factory.list_channels()], "supported": factory.get_supported_channels()}
    out["typed"] = {m: files(m).joinpath("py.typed").is_file() for m in sys.argv[1:]}
    if "voice" in out["supported"]:
        out["voice"] = type(factory.get_processor("voice", "memory://voice")).__name__
    if "broken" in out["listed"]:
        try:
            factory.get_processor("broken")
        except ChannelLoadError as exc:
            out["broken"] = [str(exc), type(exc.__cause__).__name__]
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def dist_dir() -> Path:
    path = os.environ.get("COMMPROC_DIST_DIR")
    if not path:
        pytest.fail("COMMPROC_DIST_DIR is not set: run these tests through `nox -s packaging`")
    return Path(path)


def wheel(dist_dir: Path, name: str) -> str:
    found = sorted(dist_dir.glob(f"{name}-*.whl"))
    assert found, f"no wheel for {name} in {dist_dir}"
    return str(found[-1])


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=True, clear=True).create(root)
    python = root / "bin" / "python"

    def pip(*args: str) -> None:
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *args], check=True)

    def check(*modules: str) -> dict:
        done = subprocess.run(
            [str(python), "-c", CHECK, *modules], check=True, capture_output=True, text=True, cwd=root
        )
        return json.loads(done.stdout.strip().splitlines()[-1])

    return python, pip, check


def test_sdists_hold_their_package(dist_dir: Path) -> None:
    for name, member in [
        ("commproc_core", "src/commproc_core/pipeline/processor.py"),
        ("commproc_sms", "processor.py"),
        ("commproc_email", "processor.py"),
    ]:
        sdists = sorted(dist_dir.glob(f"{name}-*.tar.gz"))
        assert sdists, f"no sdist for {name}"
        with tarfile.open(sdists[-1]) as tar:
            names = tar.getnames()
        assert any(n.endswith(member) for n in names), f"{name} sdist lacks {member}"
        assert any(n.endswith("py.typed") for n in names)


def test_install_step_by_step(env, dist_dir: Path) -> None:
    python, pip, check = env
    pip(wheel(dist_dir, "commproc_core"))
    alone = check("commproc_core")
    assert alone["supported"] == [] and alone["typed"] == {"commproc_core": True}

    pip(wheel(dist_dir, "commproc_sms"))
    assert check("commproc_sms")["supported"] == ["sms"]

    pip(wheel(dist_dir, "commproc_email"))
    both = check("commproc_sms", "commproc_email")
    assert both["supported"] == ["email", "sms"]
    assert all(both["typed"].values())

    demo = subprocess.run(
        [str(python.parent / "commproc"), "demo", "--database", f"sqlite:///{python.parent.parent}/demo.db"],
        capture_output=True,
        text=True,
        cwd=python.parent.parent,
    )
    assert demo.returncode == 0, demo.stderr
    assert (
        "sms: 10 queue messages received, 10 acknowledged, 0 left for retry; they held 10 provider events"
        in (demo.stdout)
    )
    assert "they held 11 provider events: 8 processed, 1 duplicate, 1 failed, 1 ignored" in demo.stdout
    assert "failures by reason: email invalid_payload: 1, sms invalid_payload: 1" in demo.stdout

    pip(wheel(dist_dir, "commproc_voice_test"), wheel(dist_dir, "commproc_broken_test"))
    full = check()
    assert full["listed"] == ["broken", "email", "sms", "voice"]
    assert full["supported"] == ["email", "sms", "voice"]
    assert full["voice"] == "VoiceProcessor"
    message, cause = full["broken"]
    assert "commproc-broken-test" in message and cause == "ModuleNotFoundError"

    cli = subprocess.run([str(python.parent / "commproc"), "channels"], capture_output=True, text=True)
    assert cli.returncode == 1  # the broken plugin is reported
    assert "commproc-sms" in cli.stdout and "broken" in cli.stdout
    assert sys.version_info >= (3, 10)
