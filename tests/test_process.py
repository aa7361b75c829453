"""The library leaves its user's process alone: importing strata and training through its Python API keep the
warning filters, the garbage collector, Lightning's log levels and torch's threads as they were (the commands may
tune their own process for speed). The commands' mains return what a sweeper optimises."""
import json
import subprocess
import sys
import textwrap

from commands import RecordReturns, run_main
from conftest import REPO
from finetune.__main__ import main as finetune_main
from pretrain.__main__ import main as pretrain_main
from pretrain.run import final_loss

STATE = """
import gc, logging, warnings, torch
# the dependencies first: what they do to the process on import is theirs (Lightning sets its own log level)
import hydra, matplotlib.pyplot, pytorch_lightning, safetensors.torch, scipy.special, sklearn.base, sympy, torchmetrics
from pytorch_lightning.loggers import CSVLogger
def state():
    return (list(warnings.filters), gc.get_freeze_count(), gc.isenabled(), gc.get_threshold(), torch.get_num_threads(),
            [logging.getLogger(n).level for n in ("pytorch_lightning", "lightning.pytorch", "lightning.fabric")])
"""


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", STATE + textwrap.dedent(code)], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def test_importing_the_packages_changes_nothing_in_the_process():
    done = run_python("""
        before = state()
        import pretrain, finetune, finetune.grid, pretrain.cli, pretrain.__main__, finetune.__main__
        assert state() == before, (before, state())
        print("unchanged")
    """)
    assert done.returncode == 0 and "unchanged" in done.stdout, done.stderr


def test_the_python_api_changes_nothing_in_the_process():
    done = run_python("""
        import numpy as np
        from sklearn.datasets import load_digits
        from finetune import EncoderTransformer
        from pretrain import pretrain_stack
        x = load_digits().data[:200] / 16
        torch.set_num_threads(2)
        before = state()
        EncoderTransformer(sizes=(8,), epochs=1).fit(x)
        t = torch.tensor(x, dtype=torch.float32)
        pretrain_stack(t, torch.zeros(64), torch.ones(64), [8], {"kind": "deterministic"}, epochs=1, batch_size=64,
                       trainer_options={"enable_progress_bar": False})
        import finetune, pretrain
        model = pretrain.fit(x, layers=[8], epochs=1)
        finetune.fit(model, x, load_digits().target[:200], mode="frozen", steps=4, epochs=1).predict(x[:3])
        assert state() == before, (before, state())
        print("unchanged")
    """)
    assert done.returncode == 0 and "unchanged" in done.stdout, done.stderr


def sweep(main, tmp_path, monkeypatch, capsys, *overrides):
    RecordReturns.values = []
    code, err = run_main(main, "-m", f"hydra.sweep.dir={tmp_path}", "+hydra.callbacks.returns._target_=commands.RecordReturns",
                         "trainer=fast", *overrides, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    return RecordReturns.values


def test_pretrain_main_returns_the_final_reconstruction_loss(tmp_path, monkeypatch, capsys):
    values = sweep(pretrain_main, tmp_path, monkeypatch, capsys, "model.layers=[8]", "model.epochs=1", "pictures=false",
                   "model.lr=0.001,0.01")
    losses = [final_loss(json.loads((tmp_path / str(k) / "metrics.json").read_text())) for k in (0, 1)]
    assert values == losses and all(isinstance(v, float) and v > 0 for v in values) and values[0] != values[1]


def test_finetune_main_returns_the_validation_accuracy(tmp_path, monkeypatch, capsys):
    values = sweep(finetune_main, tmp_path, monkeypatch, capsys, "finetune.mode=scratch", "model.layers=[8]", "finetune.steps=4",
                   "finetune.epochs=2", "data.labels=50", "data.val_from=pool", "save_encoder=false")
    (job,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert values == [json.loads((job / "metrics.json").read_text())["val"]["accuracy"]]
    assert 0 < values[0] <= 1
