"""``data_init_mode: official`` + ``gmm_bn_mode: eval`` reproduce the official initialisation
(MFCVAE.md §5.2, §5.3) on a small conv ladder, in float64.

The reference below is written from MFCVAE.md alone, in plain torch and scikit-learn; it uses
mfcf's networks only for their forward pass. Its copy of the model gets PyTorch's original
hook-based weight norm -- the official code's -- so the D3 behaviour (Kaiming draw and weight
rescaling of a weight-normalised conv lost, its new bias kept) follows from the mechanism
itself instead of being written down a second time.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from sklearn.mixture import GaussianMixture
from torch import nn
from torch.nn.utils import parametrize

from mfcf.api import DataInfo, DataSplit, FacetSpec
from mfcf_ladder.elbos import MFCVAEMonteCarloELBO
from mfcf_ladder.ladder_conv import LadderConvDecoder, LadderConvEncoder
from mfcf_ladder.likelihoods import GaussianLikelihood
from mfcf_ladder.model import MFCVAEModel
from mfcf_ladder.priors import MoGPrior
from mfcf_ladder.schedules import ProgressiveSchedule

SHAPE = (3, 16, 16)
N_INIT, GMM_SEED, INIT_SEED = 40, 7, 11
LAYERS = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)


def conv_model(mode: str) -> MFCVAEModel:
    """The paper's conv ladder at 1/8 width on 3x16x16 images: weight-normalised encoder convs,
    BN everywhere, full-covariance priors, fixed pi -- the SVHN / 3DShapes setting."""
    torch.manual_seed(0)
    facets = [FacetSpec(0, 3, 4), FacetSpec(1, 2, 3)]
    info = DataInfo(SHAPE, {"label": 3}, "gaussian")
    prior = MoGPrior.Config(covariance="full", learn_weights=False, min_variance=0.0)
    model = MFCVAEModel(
        MFCVAEModel.Config(data_init=True, data_init_mode=mode, data_init_examples=N_INIT, gmm_bn_mode="eval",
                           gmm_chunk_size=50, gmm_seed=GMM_SEED),
        info=info, facets=facets, priors=[MoGPrior(prior, latent_dim=f.latent_dim, n_clusters=f.n_clusters)
                                          for f in facets],
        encoder=LadderConvEncoder(LadderConvEncoder.Config(width=0.125), data_shape=SHAPE, facets=facets),
        decoder=LadderConvDecoder(LadderConvDecoder.Config(width=0.125), data_shape=SHAPE, facets=facets),
        likelihood=GaussianLikelihood(GaussianLikelihood.Config(sigma=0.3), info=info),
        elbo=MFCVAEMonteCarloELBO(MFCVAEMonteCarloELBO.Config(), n_facets=2),
        schedule=ProgressiveSchedule(ProgressiveSchedule.Config(epochs_per_step=[1, 1], fade_in_batches=5),
                                     n_facets=2, steps_per_epoch=3, epochs=2))
    return model.double()


def images(n=120) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    return torch.rand(n, *SHAPE, generator=g, dtype=torch.float64)


def with_hook_weight_norm(model: nn.Module) -> nn.Module:
    """A copy whose weight-normalised layers use the official code's weight norm: ``weight`` is
    recomputed from (g, v) by a pre-forward hook, so writes to it last one forward pass."""
    ref = copy.deepcopy(model)
    for m in ref.modules():
        if isinstance(m, LAYERS) and parametrize.is_parametrized(m, "weight"):
            dim = 1 if isinstance(m, nn.ConvTranspose2d) else 0
            parametrize.remove_parametrizations(m, "weight")  # keeps the effective weight
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # deprecated in favour of parametrizations
                nn.utils.weight_norm(m, dim=dim)
    return ref


def official_init(ref: nn.Module, x: torch.Tensor) -> list[np.ndarray]:
    """§5.2 on ``N_INIT`` random examples, then §5.3 on all of ``x``; returns the GMM means.
    The official code takes the first batch of its shuffled loader; mfcf draws the rows with
    the GMM seed, so the reference draws the same ones."""
    batch = x[np.sort(np.random.RandomState(GMM_SEED).choice(len(x), N_INIT, replace=False))]

    def forward():  # training mode, all alpha = 1: one reparameterised sample per example
        zs = [q.mean + torch.exp(0.5 * q.logvar) * torch.randn(q.mean.shape, dtype=q.mean.dtype)
              for q in ref.encoder(batch)]
        ref.decoder(zs)

    def hook(m, _inputs, out):  # boilr's data-dependent init, init_scale 0.1
        dims = [d for d in range(out.dim()) if d != 1]
        mean, var = out.mean(dims, keepdim=True), out.var(dims, keepdim=True)  # unbiased variance
        s = torch.sqrt(var + 1e-5)
        m.bias.data = (m.bias.data - mean.flatten()) * 0.1 / s.flatten()
        out_dim = 1 if isinstance(m, nn.ConvTranspose2d) else 0
        m.weight.data *= 0.1 / s.view([-1 if i == out_dim else 1 for i in range(out.dim())])
        out.data -= mean
        out.data *= 0.1 / s

    torch.manual_seed(INIT_SEED)
    ref.train()
    with torch.no_grad():
        forward()  # step 1: a plain pass, batch-norm running statistics updated once
        layers = [m for m in ref.modules() if isinstance(m, LAYERS)]
        for m in layers:  # step 2: Kaiming-normal weights, zero biases, one pass with the hooks
            nn.init.kaiming_normal_(m.weight.data)
            m.bias.data.zero_()
        handles = [m.register_forward_hook(hook) for m in layers]
        forward()
        for h in handles:
            h.remove()
        ref.eval()  # §5.3: posterior means of the whole split, batch norm on its running statistics
        features = [q.mean.numpy() for q in ref.encoder(x)]
    state = np.random.RandomState(GMM_SEED)
    return [GaussianMixture(k, covariance_type="diag", random_state=state).fit(f).means_
            for k, f in zip((4, 3), features)]


def init_mfcf(mode: str, x: torch.Tensor) -> MFCVAEModel:
    model = conv_model(mode)
    torch.manual_seed(INIT_SEED)
    model.on_epoch_start(0, DataSplit(x, {}))
    return model


def effective_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every layer's effective weight and bias and every batch norm's running statistics."""
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, LAYERS):
            if hasattr(m, "weight_g"):  # hook-based weight norm: recompute, as its next forward would
                dim = 1 if isinstance(m, nn.ConvTranspose2d) else 0
                out[f"{name}.weight"] = torch._weight_norm(m.weight_v, m.weight_g, dim)
            else:
                out[f"{name}.weight"] = m.weight
            out[f"{name}.bias"] = m.bias
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            out[f"{name}.running_mean"], out[f"{name}.running_var"] = m.running_mean, m.running_var
            out[f"{name}.num_batches_tracked"] = m.num_batches_tracked
    return {k: v.detach() for k, v in out.items()}


def test_official_data_init_and_eval_mode_gmm_reproduce_the_official_algorithm():
    x = images()
    reference = with_hook_weight_norm(conv_model("official"))
    gmm_means = official_init(reference, x)
    model = init_mfcf("official", x)

    expected, got = effective_state(reference), effective_state(model)
    assert expected.keys() == got.keys() and len(expected) == 13 * 2 + 11 * 3  # 13 layers, 11 batch norms
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-10, atol=1e-12,
                                   msg=lambda m, key=key: f"{key}: {m}")
    assert all(int(v) == 2 for k, v in got.items() if k.endswith("num_batches_tracked"))  # two passes
    for prior, means in zip(model.priors, gmm_means):
        np.testing.assert_allclose(prior.means.detach().numpy(), means, rtol=1e-9, atol=1e-11)
        torch.testing.assert_close(prior.covariances().detach(), 0.01 * torch.eye(prior.latent_dim).expand(
            prior.n_clusters, -1, -1).double(), rtol=1e-12, atol=1e-14)
    # D3 reproduced: the weight-normalised convs keep the weights they were built with
    untouched = effective_state(conv_model("official"))
    for name, m in model.named_modules():
        if parametrize.is_parametrized(m, "weight"):
            torch.testing.assert_close(got[f"{name}.weight"], untouched[f"{name}.weight"], rtol=0, atol=0)


def test_the_default_data_init_is_not_the_official_one():
    """The option matters: mfcf's default gives another latent space for the GMM fit."""
    x = images()
    official, fixed = init_mfcf("official", x), init_mfcf("fixed", x)
    assert all(int(m.num_batches_tracked) == 1 for m in fixed.modules() if isinstance(m, nn.BatchNorm2d))
    means = [p.means.detach() for p in official.priors], [p.means.detach() for p in fixed.priors]
    assert all((a - b).abs().max() > 1e-3 for a, b in zip(*means))


@pytest.mark.parametrize("mode", ["fixed", "official"])
def test_data_init_mode_is_validated(mode):
    from mfcf.config import validate_section
    from mfcf.errors import ConfigError

    assert validate_section(MFCVAEModel.Config, {"data_init_mode": mode}, "model").data_init_mode == mode
    with pytest.raises(ConfigError) as info:
        validate_section(MFCVAEModel.Config, {"data_init_mode": "boilr"}, "model")
    assert info.value.key == "model.data_init_mode"
