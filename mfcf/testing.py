"""Contract checks a plugin author can run on their own components.

Each ``check_*`` builds the component with its default config (or the one given) and a small
runtime context, exercises its interface and raises ``AssertionError`` with a message saying
what is wrong. mfcf's own test-suite runs them over every registered component, so a
third-party plugin can do the same in two lines::

    from mfcf.testing import check_encoder
    from my_pkg.encoders import ResNetEncoder

    def test_resnet_encoder_contract():
        check_encoder(ResNetEncoder, data_shape=(3, 32, 32))
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .api import (
    KINDS, Coefficients, Component, DataInfo, DataSplit, Decoder, ELBO, Encoder, FacetPrior, FacetSpec,
    GaussianPosterior, LatentModel, Likelihood, LossOutput, Schedule,
)

__all__ = [
    "check_component_class", "check_decoder", "check_elbo", "check_encoder", "check_likelihood",
    "check_prior", "check_schedule", "check_dataset", "facet_specs",
]


def facet_specs(n: int = 2, latent_dim: int = 3, n_clusters: int = 4) -> list[FacetSpec]:
    """``n`` facet specs for contract checks."""
    return [FacetSpec(j, latent_dim, n_clusters) for j in range(n)]


def _config(cls: type[Component], config: Any) -> Any:
    return config if config is not None else cls.Config()


def check_component_class(cls: type) -> None:
    """Registration basics: a known kind's subclass, a snake_case ``name``, a dataclass ``Config``
    that constructs with its defaults, and a docstring."""
    kinds = [kind for kind, base in KINDS.items() if issubclass(cls, base)]
    assert kinds, f"{cls.__qualname__} derives from none of mfcf.api's base classes"
    assert isinstance(getattr(cls, "name", None), str) and re.match(r"^[a-z][a-z0-9_]*$", cls.name), \
        f"{cls.__qualname__}.name must be a snake_case string"
    assert dataclasses.is_dataclass(cls.Config), f"{cls.__qualname__}.Config must be a dataclass"
    cls.Config()  # every option has a default
    assert (cls.__doc__ or "").strip(), f"{cls.__qualname__} needs a docstring (it is the user's manual)"


def _assert_finite(t: torch.Tensor, what: str) -> None:
    assert torch.isfinite(t).all(), f"{what} has non-finite values"


def check_encoder(cls: type[Encoder], config: Any = None, *, data_shape: Sequence[int] = (1, 28, 28),
                  facets: Sequence[FacetSpec] | None = None, batch: int = 4) -> Encoder:
    """One posterior per facet with (B, D_j) mean and log-variance; gradients reach the parameters."""
    check_component_class(cls)
    facets = list(facets or facet_specs(max(2, cls.supported_facets[0])))
    enc = cls(_config(cls, config), data_shape=tuple(data_shape), facets=facets)
    x = torch.rand(batch, *data_shape)
    posts = enc(x)
    assert len(posts) == len(facets), f"{cls.name}: {len(posts)} posteriors for {len(facets)} facets"
    for f, q in zip(facets, posts):
        assert isinstance(q, GaussianPosterior), f"{cls.name}: facet {f.index} output is not a GaussianPosterior"
        assert q.mean.shape == q.logvar.shape == (batch, f.latent_dim), \
            f"{cls.name}: facet {f.index} posterior shape {tuple(q.mean.shape)} != {(batch, f.latent_dim)}"
        _assert_finite(q.mean, f"{cls.name} facet {f.index} mean")
    sum(q.mean.sum() + q.logvar.sum() for q in posts).backward()
    assert any(p.grad is not None for p in enc.parameters()), f"{cls.name}: no gradient reaches the parameters"
    return enc


def check_decoder(cls: type[Decoder], config: Any = None, *, data_shape: Sequence[int] = (1, 28, 28),
                  facets: Sequence[FacetSpec] | None = None, batch: int = 4) -> Decoder:
    """(B, *data_shape) output; a facet with ``alpha_dec = 0`` does not change the output."""
    check_component_class(cls)
    facets = list(facets or facet_specs(max(2, cls.supported_facets[0])))
    dec = cls(_config(cls, config), data_shape=tuple(data_shape), facets=facets).eval()
    zs = [torch.randn(batch, f.latent_dim) for f in facets]
    out = dec(zs)
    assert out.shape == (batch, *data_shape), f"{cls.name}: output {tuple(out.shape)} != {(batch, *data_shape)}"
    _assert_finite(out, f"{cls.name} output")
    if len(facets) > 1:
        alpha = [0.0] + [1.0] * (len(facets) - 1)
        other = [torch.randn_like(zs[0])] + zs[1:]
        with torch.no_grad():
            assert torch.allclose(dec(zs, alpha), dec(other, alpha)), \
                f"{cls.name}: facet 0 switched off (alpha_dec=0) still changes the output"
    return dec


def check_prior(cls: type[FacetPrior], config: Any = None, *, latent_dim: int = 3, n_clusters: int = 4,
                batch: int = 5) -> FacetPrior:
    """Shapes of every method; responsibilities are a distribution; ``initialise`` sets the means."""
    check_component_class(cls)
    prior = cls(_config(cls, config), latent_dim=latent_dim, n_clusters=n_clusters)
    z = torch.randn(batch, latent_dim)
    assert prior.log_weights().shape == (n_clusters,)
    assert torch.allclose(prior.log_weights().exp().sum(), torch.tensor(1.0), atol=1e-5), "p(c) must sum to 1"
    assert prior.component_log_prob(z).shape == (batch, n_clusters)
    q = GaussianPosterior(torch.randn(batch, latent_dim), torch.randn(batch, latent_dim) * 0.1)
    assert prior.expected_component_log_prob(q).shape == (batch, n_clusters)
    gamma = prior.responsibilities(z)
    assert torch.allclose(gamma.sum(-1), torch.ones(batch), atol=1e-5), "responsibilities must sum to 1"
    _assert_finite(prior.marginal_log_prob(z), f"{cls.name} marginal log-density")
    clusters = torch.arange(n_clusters).repeat(2)
    assert prior.sample(clusters).shape == (2 * n_clusters, latent_dim)
    means = 10.0 * torch.eye(n_clusters, latent_dim) + torch.arange(n_clusters)[:, None]
    prior.initialise(means)
    assert (prior.responsibilities(means).argmax(-1) == torch.arange(n_clusters)).all(), \
        f"{cls.name}: after initialise(means) each mean should be most responsible for itself"
    return prior


def check_likelihood(cls: type[Likelihood], config: Any = None, *,
                     info: DataInfo = DataInfo((1, 6, 6), {"label": 2}), batch: int = 3) -> Likelihood:
    """log p(x|z) is one finite value per example (and per sample); ``mean`` stays in range."""
    check_component_class(cls)
    lik = cls(_config(cls, config), info=info)
    x = torch.rand(batch, *info.shape)
    params = torch.randn(batch, *info.shape)
    lp = lik.log_prob(x, params)
    assert lp.shape == (batch,), f"{cls.name}: log_prob shape {tuple(lp.shape)} != {(batch,)}"
    _assert_finite(lp, f"{cls.name} log_prob")
    assert lik.log_prob(x, params.expand(2, *params.shape)).shape == (2, batch), \
        f"{cls.name}: log_prob must accept a leading sample dimension"
    assert lik.mean(params).shape == x.shape, f"{cls.name}: mean must have the data's shape"
    return lik


def check_schedule(cls: type[Schedule], config: Any = None, *, n_facets: int = 2,
                   steps_per_epoch: int = 7) -> Schedule:
    """Coefficients of length J in [0, 1]; pure (same answer twice); ``state_dict`` round trip."""
    check_component_class(cls)
    config = _config(cls, config)
    epochs = cls.total_epochs(config) or 5
    sched = cls(config, n_facets=n_facets, steps_per_epoch=steps_per_epoch, epochs=epochs)
    for epoch in range(epochs):
        for step in (0, steps_per_epoch - 1):
            c = sched(epoch, step)
            assert isinstance(c, Coefficients)
            for field in dataclasses.fields(c):
                values = getattr(c, field.name)
                assert len(values) == n_facets, f"{cls.name}: {field.name} has {len(values)} values, not {n_facets}"
                assert all(isinstance(v, float) for v in values), f"{cls.name}: {field.name} must hold floats"
            assert sched(epoch, step) == c, f"{cls.name} is not a pure function of (epoch, step)"
    clone = cls(config, n_facets=n_facets, steps_per_epoch=1, epochs=epochs)
    clone.load_state_dict(sched.state_dict())
    assert all(clone(e, 0) == sched(e, 0) for e in range(epochs)), f"{cls.name}: state_dict does not restore it"
    return sched


def check_dataset(dataset: Any, *, splits: Sequence[str] = ("train", "test")) -> dict[str, DataSplit]:
    """A built dataset's splits agree with its ``info`` (shape, dtype, value range, factors)."""
    check_component_class(type(dataset))
    info = dataset.info
    out = {}
    for split in splits:
        data = dataset.load(split)
        assert isinstance(data, DataSplit)
        assert data.images.dtype == torch.float32, f"{split}: images must be float32"
        assert tuple(data.images.shape[1:]) == tuple(info.shape), f"{split}: shape {tuple(data.images.shape[1:])}"
        low, high = info.value_range
        assert float(data.images.min()) >= low and float(data.images.max()) <= high, f"{split}: values out of range"
        assert list(data.factors) == list(info.factors), f"{split}: factors {list(data.factors)}"
        for name, labels in data.factors.items():
            assert labels.dtype == torch.int64, f"{split}: factor {name} must be int64"
            assert 0 <= int(labels.min()) and int(labels.max()) < info.factors[name], f"{split}: {name} out of range"
        out[split] = data
    return out


def check_elbo(cls: type[ELBO], model: LatentModel, x: torch.Tensor, config: Any = None) -> LossOutput:
    """Finite scalar loss with gradients to the encoder; detached scalar terms; works in eval mode."""
    check_component_class(cls)
    elbo = cls(_config(cls, config), n_facets=len(model.priors))
    out = elbo(model, x, Coefficients.ones(len(model.priors)))
    assert out.loss.dim() == 0 and torch.isfinite(out.loss), f"{cls.name}: loss must be a finite scalar"
    for name, value in out.terms.items():
        assert value.dim() == 0, f"{cls.name}: term {name} must be a scalar"
        assert not value.requires_grad, f"{cls.name}: term {name} must be detached"
    out.loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters()), \
        f"{cls.name}: no gradient reaches the encoder"
    if isinstance(model, nn.Module):
        model.eval()
        with torch.no_grad():
            assert torch.isfinite(elbo(model, x, Coefficients.ones(len(model.priors))).loss)
        model.train()
    return out
