"""Hook implementations of the built-in 'ladder' plugin: everything MFCVAE is made of."""

import mfcf

from .elbos import MFCVAEAnalyticELBO, MFCVAECollapsedELBO, MFCVAEMonteCarloELBO
from .ladder_conv import LadderConvDecoder, LadderConvEncoder
from .ladder_fc import LadderFCDecoder, LadderFCEncoder
from .likelihoods import BernoulliLikelihood, GaussianLikelihood
from .model import MFCVAEModel
from .priors import MoGPrior
from .schedules import ConstantSchedule, ProgressiveSchedule


@mfcf.hookimpl
def mfcf_register_encoders():
    return [LadderFCEncoder, LadderConvEncoder]


@mfcf.hookimpl
def mfcf_register_decoders():
    return [LadderFCDecoder, LadderConvDecoder]


@mfcf.hookimpl
def mfcf_register_priors():
    return [MoGPrior]


@mfcf.hookimpl
def mfcf_register_likelihoods():
    return [BernoulliLikelihood, GaussianLikelihood]


@mfcf.hookimpl
def mfcf_register_elbos():
    return [MFCVAEMonteCarloELBO, MFCVAEAnalyticELBO, MFCVAECollapsedELBO]


@mfcf.hookimpl
def mfcf_register_schedules():
    return [ConstantSchedule, ProgressiveSchedule]


@mfcf.hookimpl
def mfcf_register_models():
    return [MFCVAEModel]
