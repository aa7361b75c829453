"""strata as a user installs it: a wheel built from the checkout, installed into a fresh virtual environment, its
`strata` command run from an empty directory holding a `pretrain.py` of its own. The configs come from the wheel
(package data), not from the checkout.

The fresh environment gets strata from the wheel only; its dependencies (torch, Lightning, ...) are the ones this
suite runs with, reached through a .pth file, so that nothing is downloaded."""
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import REPO
from pretrain import __version__

SOURCES = ["pyproject.toml", "README.md", "LICENSE", "pretrain", "finetune", "conf"]


def run(*argv, cwd, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "HOME": str(cwd)})


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wheel")
    (root / "src").mkdir()
    for name in SOURCES:  # a copy: building writes build/ and *.egg-info beside the sources
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / "src" / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, root / "src" / name)
    built = run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", root / "dist",
                root / "src", cwd=root)
    assert built.returncode == 0, built.stderr
    (wheel,) = (root / "dist").glob("strata_autoencoders-*.whl")
    made = run(sys.executable, "-m", "venv", "--without-pip", root / "venv", cwd=root)
    assert made.returncode == 0, made.stderr
    python = root / "venv" / "bin" / "python"
    site = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=root).stdout.strip()
    Path(site, "strata_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index", wheel, cwd=root)
    assert installed.returncode == 0, installed.stderr
    return root / "venv"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """An empty working directory but for a pretrain.py that would shadow the package."""
    folder = tmp_path_factory.mktemp("work")
    (folder / "pretrain.py").write_text("raise SystemExit('the working directory shadowed strata')\n")
    return folder


def test_the_wheel_holds_the_configs_and_its_package_is_used(venv, tmp_path):
    done = run(venv / "bin" / "python", "-c", "import pretrain, pretrain.config as c; print(pretrain.__file__); print(c.CONF_DIR)",
               cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    package, conf = done.stdout.split()
    assert Path(package).is_relative_to(venv) and Path(conf).is_relative_to(venv) and Path(conf).name == "strata_conf"
    assert (Path(conf) / "trainer" / "default.yaml").is_file() and (Path(package).parent / "py.typed").is_file()


def test_version_and_help(venv, workdir):
    version = run(venv / "bin" / "strata", "--version", cwd=workdir)
    assert version.returncode == 0 and version.stdout.strip() == f"strata-autoencoders {__version__}"
    usage = run(venv / "bin" / "strata", "--help", cwd=workdir)
    assert usage.returncode == 0 and all(verb in usage.stdout for verb in ("pretrain", "finetune", "compare", "encode", "table"))
    helped = run(venv / "bin" / "strata", "pretrain", "--help", cwd=workdir)
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("strata pretrain: Greedy layer-wise pretraining") and "powered by Hydra" not in helped.stdout
    for line in ("  autoencoder:", "   *denoising    Denoising autoencoder (Vincent et al. 2008)", "  data:", "  trainer:",
                 "  model.layers=[1000,256]    # hidden sizes h1..hL, pretrained greedily bottom-up"):
        assert any(shown.startswith(line) for shown in helped.stdout.splitlines()), line


def test_strata_pretrain_and_finetune_run_from_any_directory(venv, workdir):
    pretrained = run(venv / "bin" / "strata", "pretrain", "trainer=fast", "model.layers=[8]", "model.epochs=1", "pictures=false",
                     "hydra.run.dir=pre", cwd=workdir)
    assert pretrained.returncode == 0, pretrained.stderr
    assert (workdir / "pre" / "encoder" / "weights.safetensors").is_file() and (workdir / "pre" / "metrics.json").is_file()
    tuned = run(venv / "bin" / "strata", "finetune", "trainer=fast", "pretrained=pre/encoder", "finetune.mode=frozen",
                "finetune.steps=4", "finetune.min_passes=null", "finetune.epochs=1", "data.labels=50",
                "hydra.run.dir=fine", cwd=workdir)
    assert tuned.returncode == 0, tuned.stderr
    assert "frozen: 50 labels, 4 steps" in tuned.stdout and (workdir / "fine" / "metrics.json").is_file()
    bad = run(venv / "bin" / "strata", "pretrain", "autoencoder=nope", cwd=workdir)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: autoencoder=nope is not an option")
