"""Checkpoints of a pretraining run, so that a run killed in the middle resumes where it stopped.

    <run dir>/checkpoints/run.json              the config fields that shape the weights (checked on resume)
    <run dir>/checkpoints/layer<k>.safetensors  layer k once finished: its weights, its metrics in the metadata
    <run dir>/checkpoints/<stage>/last.ckpt     the stage in training (layer<k> or end_to_end): Lightning's
                                                checkpoint after the stage's last finished epoch

`python -m pretrain ... resume=<run dir>` (the first run's overrides otherwise) loads the finished layers instead
of training them again and continues the stage in training from its last epoch: weights, optimizer state, epoch,
loss history, torch's random state and the shuffling pass, so that it goes on as the killed run would have.
The folder is removed once the artifact is written.

Checkpoints are read with `torch.load(weights_only=True)`, tensors and plain containers only (an object of any
other class is refused, never unpickled), and checked to be this stage's before Lightning restores them.
"""
from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import torch
from omegaconf import OmegaConf
from pytorch_lightning.callbacks import Checkpoint
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .data import BatchLoader
from .distributed import is_global_zero
from .errors import StrataError
from .files import replace_file

FORMAT, VERSION = "strata.checkpoint", 1
FOLDER, RUN_FILE, LAST = "checkpoints", "run.json", "last.ckpt"
SHAPING_FIELDS = ("model", "autoencoder", "data", "seed")  # a resumed run must agree on these; trainer settings may differ

# conf/pretrain.yaml: the run directory is the one to resume, when there is one
OmegaConf.register_new_resolver("strata.resume_or", lambda resume, default: default if resume in (None, "") else resume,
                                replace=True)


class RunCheckpoints:
    """The checkpoint folder of one pretraining run; `pretrain_stack` asks it for each stage.

    A fresh run refuses a folder that exists (an interrupted run, never overwritten); a resumed one
    (`resume=True`) needs the folder, written by a run of the same config.
    """

    def __init__(self, run_dir: str | Path, config: dict, resume: bool = False):
        self.run_dir, self.folder, self.resume = Path(run_dir), Path(run_dir) / FOLDER, resume
        self.config = json.loads(json.dumps({key: config.get(key) for key in SHAPING_FIELDS}, default=str))
        self.resumed: dict[str, int] = {}  # stage -> the epoch its checkpoint resumes at
        if resume:
            self._check_run_file()
        elif is_global_zero() and self.folder.exists():
            raise StrataError(f"{self.folder} exists: the checkpoints of an interrupted run, never overwritten. "
                              f"Resume it with resume={self.run_dir} (and its overrides), or choose another hydra.run.dir")

    # -- the run ---------------------------------------------------------------------------------
    def _check_run_file(self) -> None:
        path = self.folder / RUN_FILE
        if not path.is_file():
            raise StrataError(f"resume={self.run_dir}: {path} is missing, so this is not a strata pretraining run to resume")
        try:
            saved = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, OSError) as err:
            raise StrataError(f"{path}: unreadable ({err}), so the run cannot be resumed") from None
        if not isinstance(saved, dict) or saved.get("format") != FORMAT or not isinstance(saved.get("config"), dict):
            raise StrataError(f"{path}: not a strata checkpoint folder (expected format {FORMAT!r})")
        if saved.get("version") != VERSION:
            raise StrataError(f"{path}: checkpoint version {saved.get('version')!r}, this strata reads version {VERSION}")
        changed = sorted(differences(saved["config"], self.config).items(), key=lambda d: d[0].count("."))  # top level first
        if changed:
            field, (before, now) = changed[0]
            raise StrataError(f"resume={self.run_dir}: the run was started with {field}={json.dumps(before)}, this command "
                              f"has {field}={json.dumps(now)}; resume with the first run's overrides")

    def _write_run_file(self) -> None:
        """Create the folder and run.json before the first stage trains (rank 0; nothing when it exists)."""
        if not is_global_zero() or (self.folder / RUN_FILE).exists():
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StrataError(f"cannot write checkpoints into {self.folder}: {err.strerror}") from None
        run = json.dumps({"format": FORMAT, "version": VERSION, "config": self.config}, indent=2)
        replace_file(self.folder / RUN_FILE, lambda tmp: tmp.write_text(run))

    def remove(self) -> None:
        """Delete the folder once the run's artifact is written (rank 0)."""
        if is_global_zero():
            shutil.rmtree(self.folder, ignore_errors=True)

    # -- stages ------------------------------------------------------------------------------------
    def finished(self, stage: str, layer: torch.nn.Module) -> dict | None:
        """Load a finished layer's weights into `layer` and return its metrics; None when it has not finished."""
        path = self.folder / f"{stage}.safetensors"
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as f:
                metadata, tensors = f.metadata() or {}, {key: f.get_tensor(key) for key in f.keys()}
        except (SafetensorError, OSError, ValueError) as err:
            raise StrataError(f"{path}: corrupt or truncated layer checkpoint ({err})") from None
        if metadata.get("format") != FORMAT or metadata.get("stage") != stage:
            raise StrataError(f"{path}: not strata's checkpoint of {stage}")
        check_weights(path, layer, tensors)
        layer.load_state_dict(tensors)
        try:
            return json.loads(metadata["metrics"])
        except (KeyError, json.JSONDecodeError) as err:
            raise StrataError(f"{path}: the layer's metrics in its metadata are unreadable ({err})") from None

    def save_finished(self, stage: str, layer: torch.nn.Module, metrics: dict) -> None:
        """Save a finished layer (safetensors, written under a temporary name and renamed) and drop its Lightning checkpoint."""
        if not is_global_zero():
            return
        tensors = {k: v.detach().contiguous().cpu() for k, v in layer.state_dict().items()}
        metadata = {"format": FORMAT, "version": str(VERSION), "stage": stage, "metrics": json.dumps(metrics)}
        replace_file(self.folder / f"{stage}.safetensors", lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
        shutil.rmtree(self.folder / stage, ignore_errors=True)

    def trainer_args(self, stage: str) -> dict:
        """The Trainer arguments that checkpoint `stage` after every epoch (and keep Lightning's own files in its folder)."""
        self._write_run_file()
        callback = EpochCheckpoint(self.folder / stage / LAST, stage)
        return {"callbacks": [callback], "enable_checkpointing": True, "default_root_dir": str(self.folder / stage)}

    def resume_from(self, stage: str, module: torch.nn.Module) -> str | None:
        """The checkpoint to pass to `fit(ckpt_path=...)` for `stage`, checked to be strata's of this stage and
        architecture; None when the stage starts from its first epoch."""
        path = self.folder / stage / LAST
        if not self.resume or not path.is_file():
            return None
        checkpoint = read_checkpoint(path)
        mark = checkpoint.get("strata")
        if not isinstance(mark, dict) or mark.get("format") != FORMAT:
            raise StrataError(f"{path}: not a strata checkpoint (no {FORMAT!r} mark; written by another program?)")
        if mark.get("stage") != stage:
            raise StrataError(f"{path}: a checkpoint of stage {mark.get('stage')!r}, expected {stage!r}")
        check_weights(path, module, checkpoint.get("state_dict"))
        self.resumed[stage] = int(checkpoint.get("epoch", -1)) + 1
        return str(path)

    def log_version(self, stage: str) -> str:
        """The CSV log folder of `stage` (after `resume_from`): a resumed stage logs beside the killed run's log,
        which Lightning would otherwise replace."""
        return f"{stage}_from_epoch{self.resumed[stage]}" if stage in self.resumed else stage

    def started_at(self, stage: str) -> int:
        """The epoch `stage` starts at in this process: 0, or the epoch it resumes at."""
        return self.resumed.get(stage, 0)


class NoCheckpoints(RunCheckpoints):
    """Stages that are neither saved nor resumed (a library call of `pretrain_stack`)."""

    def __init__(self):
        self.resumed = {}

    def finished(self, stage, layer):
        return None

    def save_finished(self, stage, layer, metrics):
        pass

    def trainer_args(self, stage):
        return {}

    def resume_from(self, stage, module):
        return None

    def remove(self):
        pass


class EpochCheckpoint(Checkpoint):
    """Saves the stage's Lightning checkpoint after every training epoch, with what Lightning does not keep: the
    loss history, torch's random state and strata's mark.

    A `Checkpoint` subclass, so that Lightning calls its `on_train_epoch_end` after the module's (the epoch's
    loss is in the history by then).
    """

    def __init__(self, path: Path, stage: str):
        self.path, self.stage = path, stage

    def on_train_start(self, trainer, module) -> None:
        loader = trainer.train_dataloader
        if isinstance(loader, BatchLoader):  # a resumed stage shuffles as the killed run would have in this epoch
            loader.passes = trainer.current_epoch

    def on_train_epoch_end(self, trainer, module) -> None:
        if trainer.is_global_zero:  # a checkpoint is the last epoch's or the one before, never a half-written one
            replace_file(self.path, lambda tmp: trainer.save_checkpoint(tmp))
        else:
            trainer.save_checkpoint(self.path)  # a collective call: only rank 0 writes

    def on_save_checkpoint(self, trainer, module, checkpoint: dict) -> None:
        checkpoint["strata"] = {"format": FORMAT, "version": VERSION, "stage": self.stage, "history": list(module.history),
                                "curves": {k: list(v) for k, v in module.curves.items()},
                                "rng": torch.get_rng_state()}

    def on_load_checkpoint(self, trainer, module, checkpoint: dict) -> None:
        mark = checkpoint["strata"]
        module.history = list(mark["history"])
        module.curves = {k: list(v) for k, v in mark["curves"].items()}
        torch.set_rng_state(mark["rng"])


def read_checkpoint(path: Path) -> dict:
    """A Lightning checkpoint file, read with weights_only=True: tensors and plain containers, nothing else unpickled."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        reason = str(err).strip().splitlines()[-1]
        raise StrataError(f"{path}: holds objects that are not tensors or plain containers, so it is not loaded "
                          f"(not a strata checkpoint? {reason})") from None
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for a broken file
        raise StrataError(f"{path}: corrupt or truncated checkpoint ({str(err).strip().splitlines()[0]})") from None
    if not isinstance(checkpoint, dict):
        raise StrataError(f"{path}: holds a {type(checkpoint).__name__}, not a checkpoint dictionary")
    return checkpoint


def check_weights(path: Path, module: torch.nn.Module, tensors) -> None:
    """`tensors` are weights for `module`: the same names, each of the same shape."""
    expected = module.state_dict()
    if not isinstance(tensors, dict):
        raise StrataError(f"{path}: holds no weights (expected those of {module_name(module)})")
    missing, extra = sorted(expected.keys() - tensors.keys()), sorted(tensors.keys() - expected.keys())
    if missing or extra:
        raise StrataError(f"{path}: weights {', '.join(missing[:3]) or 'none'} missing and {', '.join(extra[:3]) or 'none'} "
                          f"unexpected for {module_name(module)} (a checkpoint of another architecture?)")
    for key, value in expected.items():
        shape = tuple(getattr(tensors[key], "shape", ()))
        if shape != tuple(value.shape):
            raise StrataError(f"{path}: {key} has shape {shape}, but this run's {module_name(module)} has {tuple(value.shape)} "
                              "(a checkpoint of another architecture?)")


def module_name(module: torch.nn.Module) -> str:
    """What `module` is, for messages: a layer's kind and shape, else its class."""
    if hasattr(module, "n_in") and hasattr(module, "n_hidden"):
        return f"{getattr(module, 'kind', 'autoencoder')} layer {module.n_in}->{module.n_hidden}"
    return type(module).__name__


def differences(before, now, prefix: str = "") -> dict:
    """{dotted field: (before, now)} where two JSON-like configs differ."""
    if isinstance(before, dict) and isinstance(now, dict):
        out = {}
        for key in sorted(before.keys() | now.keys(), key=str):
            out |= differences(before.get(key), now.get(key), f"{prefix}{key}.")
        return out
    return {} if before == now else {prefix.rstrip("."): (before, now)}

