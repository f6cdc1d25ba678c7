"""The paper's models (weights stored (hidden, visible)): RBM, DBN, DAE, SDAE, fine-tuning classifier.

Each model holds a frozen config dataclass (``model.cfg``); ``model.config()`` is its JSON-able dict, and
``Model.from_config`` takes either back.
"""

from unitlens.models.classifier import ClassifierConfig, StackClassifier
from unitlens.models.configs import config_from_dict, config_to_dict
from unitlens.models.dae import DAE, Corruption, DAEConfig, corrupt
from unitlens.models.dbn import DBN, DBNConfig
from unitlens.models.rbm import RBM, RBMConfig
from unitlens.models.sampling import sample_bernoulli
from unitlens.models.sdae import SDAE, SDAEConfig
from unitlens.models.stack import LayerStack

__all__ = [
    "DAE",
    "DBN",
    "RBM",
    "SDAE",
    "ClassifierConfig",
    "Corruption",
    "DAEConfig",
    "DBNConfig",
    "LayerStack",
    "RBMConfig",
    "SDAEConfig",
    "StackClassifier",
    "config_from_dict",
    "config_to_dict",
    "corrupt",
    "sample_bernoulli",
]
