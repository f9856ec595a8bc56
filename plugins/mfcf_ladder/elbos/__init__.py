"""ELBO estimators of the ladder MFCVAE, one module each (MFCVAE.md §3).

=====================  ==========================  =========================================
registry name          class                       estimator
=====================  ==========================  =========================================
``mfcvae_mc``          MFCVAEMonteCarloELBO        the official five-term estimator (§3.1)
``mfcvae_analytic``    MFCVAEAnalyticELBO          mean-field ELBO with the optimal q(c|x) (§3.4)
``mfcvae_collapsed``   MFCVAECollapsedELBO         c summed out exactly, S samples (§3.3)
=====================  ==========================  =========================================
"""

from .analytic import MFCVAEAnalyticELBO, optimal_cluster_log_posterior
from .base import MFCVAEELBOBase
from .collapsed import MFCVAECollapsedELBO
from .monte_carlo import FiveTerms, MFCVAEMonteCarloELBO

__all__ = [
    "FiveTerms", "MFCVAEAnalyticELBO", "MFCVAECollapsedELBO", "MFCVAEELBOBase",
    "MFCVAEMonteCarloELBO", "optimal_cluster_log_posterior",
]
