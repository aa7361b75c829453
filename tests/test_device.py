"""trainer.accelerator=auto by default: a GPU where there is one, else the CPU, and the run's log line names the
device. No GPU is lent to this suite, so the GPU path is covered on the CPU: the same code runs with
accelerator=auto, each stage's data and greedy codes sit on the device the module trains on, and the device's
name is formatted as a GPU run would print it."""
import types

import pytorch_lightning as pl
import torch

from pretrain import pretrain_stack
from pretrain.training import DEFAULT_TRAINER, device_name, make_trainer


class DeviceRecorder(pl.Callback):
    def __init__(self):
        self.devices = []

    def on_train_start(self, trainer, pl_module):
        self.devices.append((trainer.train_dataloader.tensors[0].device, pl_module.device))


def test_the_default_accelerator_is_auto(config):
    assert config()["trainer"]["accelerator"] == "auto" and DEFAULT_TRAINER["accelerator"] == "auto"


def test_each_stage_trains_where_its_data_and_codes_are(digits):
    recorder = DeviceRecorder()
    result = pretrain_stack(digits.x_train, digits.shift, digits.scale, [8, 4], {"kind": "deterministic"}, epochs=1,
                            batch_size=64, trainer_options={"accelerator": "auto", "enable_progress_bar": False,
                                                            "callbacks": [recorder]}, end_to_end_epochs=1)
    expected = make_trainer({"accelerator": "auto"}, 1, "probe", None, "probe").strategy.root_device
    assert len(recorder.devices) == 3  # two greedy layers and the end-to-end stage
    assert all(data.type == module.type == expected.type for data, module in recorder.devices)
    assert all(p.device.type == "cpu" for p in result.model.parameters())  # the model comes back on the CPU


def test_a_run_names_its_device(tmp_path, config, capsys):
    from omegaconf import OmegaConf

    from pretrain import run_pretraining

    run_pretraining(OmegaConf.create(config("trainer=fast", "model.layers=[8]", "model.epochs=1", "pictures=false")), tmp_path)
    assert " on digits on cpu; artifact: " in capsys.readouterr().out  # this machine has no GPU


def test_a_gpu_is_named_with_its_model(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "NVIDIA H200")
    gpu = types.SimpleNamespace(strategy=types.SimpleNamespace(root_device=torch.device("cuda", 0)), num_devices=1, num_nodes=1)
    assert device_name(gpu) == "cuda:0 (NVIDIA H200)"
    gpu.num_devices = 4
    assert device_name(gpu) == "cuda:0 (NVIDIA H200), 4 devices"
    cpu = types.SimpleNamespace(strategy=types.SimpleNamespace(root_device=torch.device("cpu")), num_devices=1, num_nodes=1)
    assert device_name(cpu) == "cpu"
