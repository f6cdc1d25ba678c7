"""The paper's models (weights stored (hidden, visible)): RBM, DBN, DAE, SDAE, fine-tuning classifier."""

from unitlens.models.classifier import StackClassifier
from unitlens.models.dae import DAE, Corruption, corrupt
from unitlens.models.dbn import DBN
from unitlens.models.rbm import RBM
from unitlens.models.sdae import SDAE
from unitlens.models.stack import LayerStack

__all__ = ["DAE", "DBN", "RBM", "SDAE", "Corruption", "LayerStack", "StackClassifier", "corrupt"]
