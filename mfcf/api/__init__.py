"""The interfaces a plugin implements, one module per component kind.

=============  =======================  ==============================================
kind           base class               registered through hook
=============  =======================  ==============================================
encoder        :class:`Encoder`         ``mfcf_register_encoders``
decoder        :class:`Decoder`         ``mfcf_register_decoders``
prior          :class:`FacetPrior`      ``mfcf_register_priors``
likelihood     :class:`Likelihood`      ``mfcf_register_likelihoods``
elbo           :class:`ELBO`            ``mfcf_register_elbos``
schedule       :class:`Schedule`        ``mfcf_register_schedules``
dataset        :class:`Dataset`         ``mfcf_register_datasets``
model          :class:`Model`           ``mfcf_register_models``
=============  =======================  ==============================================
"""

from .component import Component, EmptyConfig
from .dataset import DataInfo, Dataset, DataSplit
from .decoder import Decoder
from .elbo import ELBO, LatentModel
from .encoder import Encoder
from .generative import ClusterSampler, FacetSwapper, GenerativeModel, LatentCodec
from .likelihood import Likelihood
from .model import PARTS, Model
from .prior import FacetPrior
from .schedule import Schedule
from .types import Coefficients, FacetSpec, GaussianPosterior, LossOutput, as_coefficients, full_precision, scaled

#: kind name -> base class, in the order components are built.
KINDS: dict[str, type[Component]] = {
    "dataset": Dataset,
    "prior": FacetPrior,
    "encoder": Encoder,
    "decoder": Decoder,
    "likelihood": Likelihood,
    "elbo": ELBO,
    "schedule": Schedule,
    "model": Model,
}

__all__ = [
    "KINDS", "PARTS", "ClusterSampler", "Coefficients", "Component", "DataInfo", "DataSplit", "Dataset", "Decoder",
    "ELBO", "EmptyConfig", "Encoder", "FacetPrior", "FacetSwapper", "FacetSpec", "GaussianPosterior", "GenerativeModel", "LatentCodec",
    "LatentModel", "Likelihood", "LossOutput", "Model", "Schedule", "as_coefficients", "full_precision", "scaled",
]
