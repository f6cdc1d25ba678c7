"""Numbers for the paper's claims: restart agreement, selectivity, the shuffled control, degenerate optima,
agreement between methods, and the claims table."""

from unitlens.analysis.agreement import activation_vs_data, method_agreement, pearson_rows
from unitlens.analysis.claims import measure_claims
from unitlens.analysis.control import shuffled_copy
from unitlens.analysis.degenerate import degenerate_optima, energy_concentration
from unitlens.analysis.restarts import restart_agreement, restart_agreement_of, summarize_restarts
from unitlens.analysis.selectivity import selectivity, selectivity_of

__all__ = [
    "activation_vs_data",
    "degenerate_optima",
    "energy_concentration",
    "measure_claims",
    "method_agreement",
    "pearson_rows",
    "restart_agreement",
    "restart_agreement_of",
    "selectivity",
    "selectivity_of",
    "shuffled_copy",
    "summarize_restarts",
]
