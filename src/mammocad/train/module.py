"""The LightningModule that trains a registry classifier on a task, phase by phase.

Batches are ``(x, y)``: x float (N, 1, S, S) grayscale in [0, 1], y int64 (N,) class indices.
The loss is ``sum(weight * cross_entropy(logits, y))`` over ``model.training_outputs(x)``
(InceptionV3's auxiliary logits count 0.4), class-weighted when ``class_weights`` is given.

Per-epoch logs (one value per epoch): ``train_loss``, ``train_acc``, ``val_loss``, ``val_acc``,
``val_auc`` (binary tasks: ROC AUC of ``probs[:, 1]``; multiclass: macro one-vs-rest AUC),
``phase`` (index into the schedule) and ``lr``. ``val_loss`` is the same (weighted) criterion
on the main logits. Metrics are torchmetrics objects, so under DDP they are computed over all
processes' samples.

Phases: ``__init__`` applies the first phase (``set_trainable``). At the start of each epoch
the phase of that epoch is applied if it differs from the current one, and the optimizer is
rebuilt for the new trainable parameters and learning rate (a fresh Adam, so its moments start
from zero, as in a separate fit per phase). The current phase index is stored in every
checkpoint and restored before the optimizer is built, so a resumed run loads the optimizer
state of the phase it was saved in and switches at the same epoch as an uninterrupted run.
Frozen BatchNorm layers stay in eval mode (``set_frozen_bn_eval``) throughout; with
``frozen_batchnorm`` every BatchNorm layer does (running statistics fixed, affine parameters trained).

The phase machinery lives in ``PhasedModule``, which the segmenters' LightningModule
(``mammocad.segment.training``) shares: a subclass holds its network in ``self.model`` and says
which parameters a named phase trains (``set_phase``).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.strategies import DDPStrategy
from torchmetrics import AUROC, Accuracy, MeanMetric

from mammocad.models import build_classifier, set_frozen_bn_eval, set_trainable
from mammocad.train.schedule import parse_phases
from mammocad.train.strided_depthwise import use_fast_strided_depthwise
from mammocad.train.tasks import get_task

PHASE_KEY = "mammocad_phase_index"  # checkpoint entry holding the phase the optimizer state belongs to


class PhasedModule(L.LightningModule):
    """A LightningModule trained phase by phase (see the module docstring): optimizer, phase switches, resume.

    ``schedule``: the parsed phases. Subclasses set ``self.model`` and implement ``set_phase(name)``
    (``requires_grad`` of the phase's parameters); ``hparams.weight_decay`` is Adam's L2 penalty.
    """

    def __init__(self, schedule: Any):
        super().__init__()
        self.schedule = schedule
        self.phase_index = 0  # index into ``schedule`` of the phase applied to the model

    def set_phase(self, name: str) -> None:
        raise NotImplementedError

    def apply_phase(self, index: int) -> None:
        """Make phase ``index``'s layers (only) trainable; the optimizer is not touched."""
        self.phase_index = index
        self.set_phase(self.schedule[index].name)

    @property
    def in_last_phase(self) -> bool:
        return self.phase_index == len(self.schedule) - 1

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam over the current phase's trainable parameters at its learning rate."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        return torch.optim.Adam(params, lr=self.schedule[self.phase_index].lr,
                                weight_decay=self.hparams.weight_decay)

    def on_train_epoch_start(self) -> None:
        index = self.schedule.index_at(self.current_epoch)
        if index != self.phase_index:
            self.apply_phase(index)
            strategy = self.trainer.strategy
            if isinstance(strategy, DDPStrategy) and strategy.model is not self:
                # DDP synchronises the gradients of the parameters that required grad when it
                # wrapped the model; wrap again so newly unfrozen layers are synchronised too.
                strategy.model = self
                strategy.configure_ddp()
            strategy.setup_optimizers(self.trainer)
        self.model.train()
        self.batchnorm_eval()
        self.log_dict({"phase": float(self.phase_index), "lr": self.optimizers().param_groups[0]["lr"]},
                      on_step=False, on_epoch=True)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self.batchnorm_eval()  # again: a validation run inside the epoch puts the model back in train mode

    def batchnorm_eval(self) -> None:
        """Frozen layers' BatchNorm in eval mode (``set_frozen_bn_eval``); every BatchNorm layer when the
        module's ``hparams.frozen_batchnorm`` is set."""
        if self.hparams.get("frozen_batchnorm", False):
            for module in self.model.modules():
                if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                    module.eval()
        else:
            set_frozen_bn_eval(self.model)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[PHASE_KEY] = self.phase_index

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Called before the optimizer is built, so it matches the saved optimizer state.
        self.apply_phase(checkpoint[PHASE_KEY])


class ClassifierModule(PhasedModule):
    """Trains ``build_classifier(model, task classes, weights, dropout, input_norm)`` on ``task``.

    Every argument is saved in the checkpoint's hyperparameters (``save_hyperparameters``):
    ``input_size`` (side S of the input, px) is recorded for inference; ``phases`` is a
    schedule string (``mammocad.train.schedule``); ``weight_decay`` is Adam's L2 penalty;
    ``channels_last`` converts the model and its inputs to channels-last memory format;
    ``fast_strided_depthwise`` swaps strided depthwise convolutions for ``StridedDepthwiseConv2d``
    (same parameters and outputs, a faster bf16 CPU backward; ``strided_depthwise_layers`` counts them);
    ``frozen_batchnorm`` keeps every BatchNorm layer in eval mode while training (see ``TrainConfig``);
    ``run_config`` is the run's full configuration (a flat dict), kept for provenance.
    """

    def __init__(self, *, model: str, task: str, input_size: int, phases: str, weights: str = "none",
                 dropout: float = 0.2, input_norm: str | None = None, weight_decay: float = 0.0,
                 class_weights: list[float] | None = None, channels_last: bool = False,
                 fast_strided_depthwise: bool = False, frozen_batchnorm: bool = False,
                 run_config: dict | None = None):
        super().__init__(parse_phases(phases))
        self.save_hyperparameters()
        self.task = get_task(task)
        self.model = build_classifier(model, self.task.num_classes, weights=weights, dropout=dropout,
                                      input_norm=input_norm)
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.strided_depthwise_layers = use_fast_strided_depthwise(self.model) if fast_strided_depthwise else 0
        weight = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
        self.register_buffer("class_weight", weight, persistent=False)
        kind = "binary" if self.task.is_binary else "multiclass"
        self.train_loss, self.val_loss = MeanMetric(), MeanMetric()
        self.train_acc = Accuracy(task=kind, num_classes=self.task.num_classes, average="micro")
        self.val_acc = Accuracy(task=kind, num_classes=self.task.num_classes, average="micro")
        self.val_auc = AUROC(task=kind, num_classes=self.task.num_classes, average="macro")
        self.apply_phase(0)

    def set_phase(self, name: str) -> None:
        set_trainable(self.model, name)

    # ---- steps --------------------------------------------------------------------------------
    def _input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.hparams.channels_last else x

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), y, weight=self.class_weight)

    def _scores(self, logits: torch.Tensor) -> torch.Tensor:
        """Class probabilities (N, C) float32; binary tasks: the positive class's (N,)."""
        probs = logits.detach().float().softmax(dim=1)
        return probs[:, 1] if self.task.is_binary else probs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, S, S) in [0, 1] -> logits (N, C)."""
        return self.model(self._input(x))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        outputs = self.model.training_outputs(self._input(x))
        loss = sum(weight * self._loss(logits, y) for weight, logits in outputs)
        self.train_loss.update(loss.detach(), len(y))
        self.train_acc.update(self._scores(outputs[0][1]), y)
        self.log_dict({"train_loss": self.train_loss, "train_acc": self.train_acc}, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.val_loss.update(self._loss(logits, y), len(y))
        scores = self._scores(logits)
        self.val_acc.update(scores, y)
        self.val_auc.update(scores, y)
        self.log_dict({"val_loss": self.val_loss, "val_acc": self.val_acc, "val_auc": self.val_auc},
                      on_step=False, on_epoch=True, prog_bar=True)
