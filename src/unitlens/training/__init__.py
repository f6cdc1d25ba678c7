"""Training: contrastive divergence, the denoising criterion, the greedy layer-wise loop, fine-tuning."""

from unitlens.training.contrastive_divergence import CDTrainer
from unitlens.training.denoising import DenoisingTrainer
from unitlens.training.finetune import FinetuneConfig, finetune
from unitlens.training.greedy import LayerwiseConfig, LayerwiseState, train_layerwise
from unitlens.training.likelihood import ais_log_partition, log_partition_exact, pseudo_log_likelihood
from unitlens.training.sgd import SGDConfig

__all__ = [
    "CDTrainer",
    "DenoisingTrainer",
    "FinetuneConfig",
    "LayerwiseConfig",
    "LayerwiseState",
    "SGDConfig",
    "ais_log_partition",
    "finetune",
    "log_partition_exact",
    "pseudo_log_likelihood",
    "train_layerwise",
]
