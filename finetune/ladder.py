"""The Ladder network (Rasmus et al. 2015, "Semi-Supervised Learning with Ladder Networks") on the pretrained encoder:
strata's layer-wise denoising made semi-supervised, with a denoising cost at every layer instead of one per layer
and stage.

The encoder's layers and the linear head are the ladder's L layers, l = 1..L. Each one batch-normalises its
pre-activation and then applies a learned shift beta and scale gamma (Ioffe and Szegedy 2015):

    z_l = BN(W_l h_{l-1})                              h_0 = the preprocessed input x
    h_l = act_l(gamma_l * (z_l + beta_l))              act_L: the identity (the logits; softmax in the cost)

The corrupted pass adds Gaussian noise of std `noise` to h_0 and to every z_l (~z_l); the clean pass keeps the
batch statistics mu_l, sigma_l (and their running averages, which evaluation uses). A decoder, from the top down,
denoises every layer from the noisy code beside it (the lateral connection) and the estimate from above:

    u_L = BN(softmax(~h_L)),   u_l = BN(V_{l+1} ^z_{l+1})
    ^z_l = (~z_l - m(u_l)) * v(u_l) + m(u_l)          m(u) = a1 sigmoid(a2 u + a3) + a4 u + a5, v likewise (a6..a10)

    loss = CE(softmax(~h_L) of the labeled batch, y)
         + sum_l weights[l] * mean over the unlabeled batch of |z_l - (^z_l - mu_l) / sigma_l|^2 / width_l

`weights` holds lambda_0 (the input) to lambda_L; a shorter list repeats its last value for the layers above. The
default, [0, 10, 0.1], drops the paper's lambda_0 = 1000: the hidden layers' costs are in batch-normalised units, the
input's in the data's own, so a weight tuned on MNIST's pixels does not carry over (on the development suite's
validation splits it cost 4.6 points on the mean and up to 26 in a cell; docs/devsuite.md).
Noise replaces fine-tuning's dropout. At evaluation the clean pass with running statistics is an affine map per
layer, so `folded()` writes it into the encoder's Linear layers and the head: the result is a plain Classifier
that exports like any other, with the same predictions.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from pretrain import Encoder, StrataError
from pretrain.optimizers import make_optimizer

from .classifier import Classifier

EPS, MOMENTUM = 1e-5, 0.1  # batch normalisation's, as torch.nn.BatchNorm1d's


def normalised(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(z standardised over the batch, the batch mean, the batch variance)."""
    mean, var = z.mean(dim=0), z.var(dim=0, unbiased=False)
    return (z - mean) / torch.sqrt(var + EPS), mean, var


class Combinator(nn.Module):
    """The vanilla combinator g(~z, u) of Rasmus et al.: per unit, ten parameters, initialised as in their code
    (a2 = a7 = 1, the others 0: ^z = 0 at the start)."""

    def __init__(self, width: int):
        super().__init__()
        init = torch.zeros(10, width)
        init[1] = init[6] = 1.0
        self.a = nn.Parameter(init)

    def forward(self, noisy: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        a = self.a
        mean = a[0] * torch.sigmoid(a[1] * u + a[2]) + a[3] * u + a[4]
        scale = a[5] * torch.sigmoid(a[6] * u + a[7]) + a[8] * u + a[9]
        return (noisy - mean) * scale + mean


class LadderClassifier(Classifier):
    """A Classifier on `encoder` (a copy, all of it trained) with a linear head, trained as a Ladder network on
    ((x_l, y_l), x_u) batches (`PairedBatches`)."""

    def __init__(self, encoder: Encoder, num_classes: int, noise: float = 0.3, weights: list[float] = (0.0, 10.0, 0.1),
                 **classifier_options):
        if classifier_options.get("head", "linear") != "linear":
            raise StrataError(f"finetune.mode=ladder needs finetune.head=linear (the ladder's top layer), "
                              f"got {classifier_options['head']!r}")
        super().__init__(encoder, num_classes, mode="unfrozen", **classifier_options)
        self.mode = "ladder"
        self.noise = noise
        self.linears = [*encoder.linears, self.head]
        self.acts = [block[1] for block in encoder.layers] + [nn.Identity()]
        widths = [encoder.input_dim, *(lin.out_features for lin in self.linears)]
        weights = list(weights)
        self.cost_weights = (weights + [weights[-1]] * len(widths))[: len(widths)]
        self.gamma = nn.ParameterList(nn.Parameter(torch.ones(w)) for w in widths[1:])
        self.beta = nn.ParameterList(nn.Parameter(torch.zeros(w)) for w in widths[1:])
        self.decoder = nn.ModuleList(nn.Linear(w_above, w, bias=False) for w, w_above in zip(widths[:-1], widths[1:]))
        for lin in self.decoder:  # as the paper's V: scaled by the fan-in
            nn.init.normal_(lin.weight, std=lin.in_features ** -0.5)
        self.combinators = nn.ModuleList(Combinator(w) for w in widths)
        for l, w in enumerate(widths[1:]):
            self.register_buffer(f"running_mean_{l}", torch.zeros(w))
            self.register_buffer(f"running_var_{l}", torch.ones(w))

    def running(self, l: int) -> tuple[torch.Tensor, torch.Tensor]:
        return getattr(self, f"running_mean_{l}"), getattr(self, f"running_var_{l}")

    def encode(self, h: torch.Tensor, noise: float = 0.0, update: bool = False):
        """One pass over a preprocessed batch: (logits, [z_0 .. z_L], [(mu_l, var_l) for l = 1..L]). In training
        each z_l is normalised with its batch's statistics (the clean pass, `update`, keeps their running means);
        in evaluation with the running ones."""
        h = h + noise * torch.randn_like(h) if noise else h
        zs, stats = [h], []
        for l, (lin, act) in enumerate(zip(self.linears, self.acts)):
            pre = F.linear(h, lin.weight, lin.bias)
            if self.training:
                z, mean, var = normalised(pre)
                if update:
                    with torch.no_grad():
                        running_mean, running_var = self.running(l)
                        running_mean.lerp_(mean, MOMENTUM)
                        running_var.lerp_(var * len(pre) / max(len(pre) - 1, 1), MOMENTUM)
            else:
                mean, var = self.running(l)
                z = (pre - mean) / torch.sqrt(var + EPS)
            if noise:
                z = z + noise * torch.randn_like(z)
            zs.append(z)
            stats.append((mean, var))
            h = act(self.gamma[l] * (z + self.beta[l]))
        return h, zs, stats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(self.encoder.preprocess(x))[0]

    def denoising_costs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each layer's denoising cost on the unlabeled batch `x`, lowest (the input) first, unweighted."""
        h = self.encoder.preprocess(x)
        _, clean, stats = self.encode(h, update=True)
        logits, noisy, _ = self.encode(h, noise=self.noise)
        costs, above = [], None
        for l in reversed(range(len(noisy))):
            u = normalised(F.softmax(logits, dim=1) if above is None else self.decoder[l](above))[0]
            estimate = self.combinators[l](noisy[l], u)
            target = clean[l].detach() if l == 0 else clean[l]
            scaled = estimate if l == 0 else (estimate - stats[l - 1][0]) / torch.sqrt(stats[l - 1][1] + EPS)
            costs.append(((scaled - target) ** 2).mean(dim=0).sum() / estimate.shape[1])  # per example, per unit
            above = estimate
        return costs[::-1]

    def training_step(self, batch, batch_idx):
        (x, y), u = batch
        logits = self.encode(self.encoder.preprocess(x), noise=self.noise)[0]
        loss = F.cross_entropy(logits, y)
        for l, (weight, cost) in enumerate(zip(self.cost_weights, self.denoising_costs(u))):
            loss = loss + weight * cost
            self.log(f"denoising_{l}", cost, batch_size=len(u))
        return loss

    def configure_optimizers(self):
        """The head, its BN shift and scale, and the decoder at `lr`; the encoder's layers at lr * encoder_lr_scale."""
        encoder = list(self.encoder.layers.parameters())
        ladder = [*self.head.parameters(), *self.gamma, *self.beta, *self.decoder.parameters(), *self.combinators.parameters()]
        groups = [{"params": ladder, "lr": self.optim["lr"]},
                  {"params": encoder, "lr": self.optim["lr"] * self.encoder_lr_scale}]
        return self.scheduled(make_optimizer(groups, **self.optim))

    @torch.no_grad()
    def folded(self) -> Classifier:
        """The evaluation pass as a plain Classifier: each layer's act(gamma ((W h + b - mean) / std + beta)) is
        act(W' h + b') with W' = gamma W / std and b' = gamma ((b - mean) / std + beta)."""
        encoder = copy.deepcopy(self.encoder)
        head = copy.deepcopy(self.head)
        for l, lin in enumerate([*encoder.linears, head]):
            mean, var = self.running(l)
            scale = self.gamma[l] / torch.sqrt(var + EPS)
            lin.bias.copy_(scale * (lin.bias - mean) + self.gamma[l] * self.beta[l])
            lin.weight.mul_(scale[:, None])
        plain = Classifier(encoder, self.num_classes, mode="unfrozen", head="linear", classes=self.classes)
        plain.head = head
        plain.mode = "ladder"
        return plain.eval()
