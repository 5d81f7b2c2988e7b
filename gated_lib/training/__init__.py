"""Training the labs' models: the loop, clipping, checkpoints, and the gradient-flow probe.

    from gated_lib.training import Trainer, TrainConfig, train, clip_grad_norm, gradient_flow
"""

from gated_lib.training.clip import clip_grad_norm, clip_grad_value, grad_norm
from gated_lib.training.loop import CHECKPOINT_FORMAT, History, TrainConfig, Trainer, train
from gated_lib.training.probe import GradientFlow, gradient_flow

__all__ = ["clip_grad_norm", "clip_grad_value", "grad_norm", "CHECKPOINT_FORMAT", "History", "TrainConfig",
           "Trainer", "train", "GradientFlow", "gradient_flow"]
