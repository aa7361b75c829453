"""Semi-supervised fine-tuning: the classifier learns from the labeled batch while the unlabeled pool keeps shaping
the encoder, so that a few labels do not pull it away from what the unlabeled data taught it.

Each step takes a labeled batch (x_l, y_l) and an unlabeled batch x_u; ~x is x corrupted as in denoising
pretraining (masking or Gaussian noise, then the classifier's dropout), p(.) the classifier's class probabilities,
e the encoder and g the pretrained decoder:

    loss =  CE(p(~x_l), y_l)
          + reconstruction * L_rec(g(e(~x_u)), x_u)     the autoencoder's own denoising cost (summed over features)
          + consistency * KL(p(x_u) || p(~x_u))         the top layer's denoising cost: the clean prediction, held
                                                        fixed, is the target of the corrupted one (the Gamma-model of
                                                        Rasmus et al. 2015; soft pseudo-labels, Lee 2013)
          + balance * KL(prior || mean_u p(~x_u))       the classes predicted on the unlabeled batch keep the labeled
                                                        subset's frequencies
          + adversarial * KL(p(x_u) || p(x_u + r))      smooth where the prediction is most sensitive: r is the
                                                        perturbation of norm radius * |x_u| that changes it most
                                                        (virtual adversarial training, Miyato et al. 2018),
                                                        found by power iteration with a probe of tiny norm xi

Without the balance term, consistency has a degenerate optimum: memorise the few labels and push the unlabeled
inputs into a few confident classes (README, MNIST: what mattered).
Only the unlabeled training inputs are used beyond the labels; at evaluation the classifier sees clean inputs.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from pretrain.layers import reconstruction_loss
from pretrain.optimizers import make_optimizer
from pretrain.regularizers import corrupt
from pretrain.stack import DeepAutoencoder

from .classifier import Classifier

CORRUPTIONS = ("mask", "gaussian")
WEIGHTS = ("reconstruction", "consistency", "balance", "adversarial")


class SemiSupervisedClassifier(Classifier):
    """A Classifier on `autoencoder`'s encoder (shared weights, all trained) that also learns from unlabeled batches:
    its training batches are ((x_l, y_l), x_u) pairs (`PairedBatches`). `prior`: the class frequencies the
    predictions on unlabeled inputs should keep (those of the labeled subset)."""

    def __init__(self, autoencoder: DeepAutoencoder, num_classes: int, prior: torch.Tensor, corruption: str = "mask",
                 noise: float = 0.25, reconstruction: float = 0.0, consistency: float = 1.0, balance: float = 1.0,
                 adversarial: float = 0.0, radius: float = 0.2, xi: float = 1e-3, power_iterations: int = 1,
                 rampup: float = 0.0, **classifier_options):
        super().__init__(autoencoder.encoder(), num_classes, mode="unfrozen", **classifier_options)
        self.mode = "semisup"
        self.autoencoder = autoencoder  # for its decoder; its encoder weights are the classifier's
        self.corruption, self.noise = corruption, noise
        self.weights = {"reconstruction": reconstruction, "consistency": consistency, "balance": balance,
                        "adversarial": adversarial}
        self.radius, self.xi, self.power_iterations, self.rampup = radius, xi, power_iterations, rampup
        self.register_buffer("prior", prior.float() / prior.sum(), persistent=False)

    def noisy_forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(preprocessed clean input, top-layer code of its corrupted copy), as the classifier trains on it."""
        clean = self.encoder.preprocess(x)
        h = self.input_dropout(corrupt(clean, self.corruption, self.noise))
        for block in self.encoder.layers:
            h = self.dropout(block(h))
        return clean, h

    def clean_logits(self, h: torch.Tensor) -> torch.Tensor:
        """The classifier's logits of an already preprocessed input, without corruption or dropout."""
        for block in self.encoder.layers:
            h = block(h)
        return self.head(h)

    def divergence(self, h: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """KL(target || p(h)) for preprocessed inputs h, averaged over the batch."""
        return F.kl_div(F.log_softmax(self.clean_logits(h), dim=1), target, reduction="batchmean")

    def adversarial_perturbation(self, clean: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The perturbation r of L2 norm `radius` * |x| that changes the prediction most, per input x (virtual
        adversarial training, Miyato et al. 2018).

        That direction is the top eigenvector of the Hessian H of KL(target || p(x + r)) at r = 0, where the gradient
        is 0: the gradient at r = xi d is xi H d + O(xi^2), so each power iteration d <- normalize(grad at xi d) is a
        finite-difference step d <- normalize(H d). The probe's norm is `xi` * |x|: tiny beside the radius, yet large
        enough that x + probe is not rounded back to x (Miyato et al.'s absolute 1e-6 is below float32's resolution
        for a pixel near 1). It runs in float32 whatever the trainer's precision. Both norms are relative to each
        input's, so that one setting fits data of any scale.
        """
        with torch.autocast(clean.device.type, enabled=False):
            x = clean.float()
            norm = x.norm(dim=1, keepdim=True)
            d = F.normalize(torch.randn_like(x), dim=1)
            for _ in range(self.power_iterations):
                probe = (self.xi * norm * d).requires_grad_()
                (grad,) = torch.autograd.grad(self.divergence(x + probe, target), probe)
                d = F.normalize(grad, dim=1)
        return (self.radius * norm * d).to(clean.dtype)

    def unlabeled_costs(self, u: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each weighted cost of the unlabeled batch `u` that has a non-zero weight, unweighted."""
        clean, code = self.noisy_forward(u)
        costs = {}
        if self.weights["consistency"] > 0 or self.weights["adversarial"] > 0:
            with torch.no_grad():
                target = F.softmax(self.clean_logits(clean), dim=1).float()
        if self.weights["reconstruction"] > 0:
            bottom = self.autoencoder.layers[0]
            costs["reconstruction"] = reconstruction_loss(self.autoencoder.decode_logits(code), clean, bottom.loss_kind)
        log_p = F.log_softmax(self.head(code), dim=1)
        if self.weights["consistency"] > 0:
            costs["consistency"] = F.kl_div(log_p, target, reduction="batchmean")
        if self.weights["balance"] > 0:
            mean_p = log_p.exp().mean(dim=0).clamp_min(1e-8)
            costs["balance"] = (self.prior * (self.prior.clamp_min(1e-8).log() - mean_p.log())).sum()
        if self.weights["adversarial"] > 0:
            costs["adversarial"] = self.divergence(clean + self.adversarial_perturbation(clean, target), target)
        return costs

    def ramp(self) -> float:
        """The unlabeled costs' share of their weights at this step: exp(-5 (1 - t)^2) over the first `rampup`
        fraction of the steps, then 1 (the ramp-up of Laine and Aila 2017). The labels shape the classes first;
        the unlabeled costs, which make the predictions consistent whatever the classes, come in as they do."""
        if self.rampup <= 0:
            return 1.0
        t = min(1.0, self.trainer.global_step / max(self.rampup * self.trainer.estimated_stepping_batches, 1))
        return math.exp(-5.0 * (1.0 - t) ** 2)

    def training_step(self, batch, batch_idx):
        (x, y), u = batch
        loss = F.cross_entropy(self.head(self.noisy_forward(x)[1]), y)
        ramp = self.ramp()
        for name, cost in self.unlabeled_costs(u).items():
            loss = loss + ramp * self.weights[name] * cost
            self.log(name, cost, prog_bar=True, batch_size=len(u))
        return loss

    def configure_optimizers(self):
        """The head at `lr`; the encoder, and the decoder weights that are not the encoder's, at lr * encoder_lr_scale."""
        shared = {id(p) for p in self.encoder.parameters()}
        decoder = [p for p in self.autoencoder.parameters() if id(p) not in shared]
        groups = [{"params": list(self.head.parameters()), "lr": self.optim["lr"]},
                  {"params": list(self.encoder.layers.parameters()) + decoder, "lr": self.optim["lr"] * self.encoder_lr_scale}]
        return self.scheduled(make_optimizer(groups, **self.optim))
