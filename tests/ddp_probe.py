"""`python -m pretrain` with a probe, for tests/test_ddp.py: every rank saves the model it ends with and its codes of
the training inputs as rank<r>.safetensors in the run directory, so the test can compare the ranks.

Lightning starts rank 1 by running this same script again (with the run directory set)."""
import torch
from safetensors.torch import save_file

import pretrain.run
from pretrain.__main__ import main

pretrain_stack = pretrain.run.pretrain_stack


def probed(x_raw, *args, log_dir=None, **kwargs):
    result = pretrain_stack(x_raw, *args, log_dir=log_dir, **kwargs)
    tensors = {**result.model.state_dict(), "codes": result.model.embed(x_raw)}
    save_file({k: v.contiguous() for k, v in tensors.items()}, f"{log_dir}/rank{torch.distributed.get_rank()}.safetensors")
    return result


pretrain.run.pretrain_stack = probed
main()
