"""scikit-learn estimators: :class:`RBM`, :class:`DBN` and :class:`SDAE`, numpy in and out.

They wrap the project's models (:mod:`unitlens.models`) and trainers (:mod:`unitlens.training`) and follow
scikit-learn's conventions: parameters stored verbatim by ``__init__`` and validated by ``fit``, fitted
attributes with a trailing underscore, ``get_params``/``set_params``, usable in a ``Pipeline`` and
``GridSearchCV``. Parameters shared with ``sklearn.neural_network.BernoulliRBM`` keep its names
(``n_components``, ``learning_rate``, ``batch_size``, ``n_iter``, ``random_state``).

Each estimator chooses its visible units from the training data (``visible="auto"``): Bernoulli for
data in [0, 1], Gaussian with per-feature standardisation otherwise; the choice is the fitted attribute
``visible_units_`` and an INFO line on the ``unitlens.estimators`` logger. Bad input raises
:class:`EstimatorInputError`, a :class:`~unitlens.errors.UnitlensError` that is also a ``ValueError``.

Requires scikit-learn >= 1.6 (``validate_data`` and ``__sklearn_tags__``).
"""

from __future__ import annotations

from unitlens.estimators._base import EstimatorInputError
from unitlens.estimators.rbm import RBM
from unitlens.estimators.stacks import DBN, SDAE

__all__ = ["DBN", "RBM", "SDAE", "EstimatorInputError"]
