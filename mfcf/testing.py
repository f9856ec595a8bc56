"""Contract checks a plugin author can run on their own components.

Each ``check_*`` builds the component with its default config (or the one given) and a small
runtime context, then calls every method in each way mfcf's own code calls it. mfcf's own
test-suite runs them over every registered component, so a third-party plugin can do the same
in two lines::

    from mfcf.testing import check_encoder
    from my_pkg.encoders import ResNetEncoder

    def test_resnet_encoder_contract():
        check_encoder(ResNetEncoder, data_shape=(3, 32, 32))

A broken contract is an ``AssertionError`` whose message names the call (method, argument
shapes and dtypes), what was expected and what came back, e.g.::

    mog.component_log_prob(z: (5, 3) float32) returned shape (4, 5); expected (5, 4) = (batch, n_clusters)

An exception the component raises inside a call becomes such an ``AssertionError`` too (the
original is chained as its cause). Construction is not wrapped: a ``ConfigError`` from
``__init__`` (the component refuses that data shape, say) reaches the caller unchanged.
Checks run under a fixed seed and leave the global random state as they found it.

The call forms checked, with the mfcf code that makes them. ``device`` (default CPU) is where
a check puts the component and its inputs; dtypes are float32 (training), float64 (the test
suite's float64 default dtype) and bfloat16 autocast (``trainer.precision: bf16``). Priors never
see bfloat16 (the estimators cast posteriors to float32 first), likelihoods may.

* ``check_prior`` -- built in float32 and in float64: ``log_weights()`` (K,) summing to 1;
  ``component_log_prob``, ``joint_log_prob``, ``responsibilities`` and ``marginal_log_prob``
  of z with leading dims (B,) (cluster assignment), (S, B) and (1, B) (the estimators'
  samples: ``mfcvae_collapsed`` / ``mfcvae_analytic`` ``n_samples=S``, ``mfcvae_mc``), each
  sample scored as if alone, gradients to z and the parameters;
  ``expected_component_log_prob(q)`` (B, K) with gradients to q's mean and log-variance, equal
  to ``component_log_prob(q.mean)`` for a point-mass q; ``sample(clusters, temperature=,
  generator=)`` (N, D) and ``sample_clusters(n, generator=)`` (``generate``): reproducible from
  the generator, the global random state untouched, temperature 0 giving one point per cluster;
  ``initialise`` with CPU float64 tensors straight from scikit-learn as ``(means, None, None)``,
  ``(means, variances, None)`` and ``(means, variances, weights)``, after which the prior keeps
  its dtype and device and has those weights, and its samples those means and variances.
* ``check_encoder`` -- x (B, *data_shape) in float64 and float32; ``alpha_enc`` omitted, as
  floats (eager loss) and as 0-dim tensors (compiled loss, ``Coefficients.on_device``), all
  giving the same posteriors; (B, D_j) mean and log-variance per facet; gradients to the
  parameters; bfloat16 autocast; eval mode with a batch of 1 (the last evaluation chunk)
  matching row 0 of the full batch.
* ``check_decoder`` -- latents (N, D_j) (the estimators' S * B flattened samples) and
  (S, B, D_j) (the documented ``(..., D_j)``) in float64 and float32; ``alpha_dec`` omitted,
  floats and 0-dim tensors, all giving the same output; gradients to every latent (the encoder
  learns through them) and the parameters; bfloat16 autocast; eval mode with a batch of 1,
  with latents expanded from one row (``generate`` holds facets fixed with ``.expand``), and
  with facet 0 switched off (``alpha_dec[0] = 0``, floats and tensors) changing nothing.
* ``check_likelihood`` -- in float32 and float64, ``log_prob(x (B, ...), params)`` with params
  (B, ...), (S, B, ...) and (1, B, ...) giving (B,), (S, B), (1, B), each sample scored against
  the same x, gradients to params and the parameters; ``mean(params)`` of shape (B, ...) inside
  ``info.value_range`` even for extreme params; bfloat16 params under autocast (the autoencoder
  baselines score their decoder's output directly).
* ``check_schedule`` -- ``sched(epoch, step)`` at the first, middle and last step of every
  epoch: :class:`Coefficients` of J Python floats, alphas in [0, 1], betas finite and >= 0; the
  same answers when asked again and in reverse order (a pure function); ``state_dict()``
  survives the checkpoint format (``torch.load(weights_only=True)``) and restores an instance
  built with another ``steps_per_epoch``.
* ``check_elbo`` -- ``elbo(model, x, coeffs)`` with all-ones floats, the same as 0-dim tensors
  (compiled loss; same loss for the same seed), a progressive step (facet 0 switched off),
  bfloat16 autocast, and eval mode under ``torch.no_grad()``: a finite float32 scalar loss with
  gradients to the encoder, the decoder and every prior; detached finite 0-dim terms on x's
  device.
* ``check_dataset`` -- every split's images float32 of ``info.shape`` inside
  ``info.value_range``; int64 factors in range, named and ordered as ``info.factors``.
* ``check_component_class`` -- a known kind, a snake_case ``name``, a dataclass ``Config``
  that constructs with its defaults, a docstring.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .api import (
    KINDS, Coefficients, Component, DataInfo, DataSplit, Decoder, ELBO, Encoder, FacetPrior, FacetSpec,
    GaussianPosterior, LatentModel, Likelihood, LossOutput, Schedule,
)

__all__ = [
    "check_component_class", "check_decoder", "check_elbo", "check_encoder", "check_likelihood",
    "check_prior", "check_schedule", "check_dataset", "facet_specs",
]

#: The dtypes components are built and called in: float32 (training) and float64 (numerical tests).
FLOAT_DTYPES = (torch.float32, torch.float64)


def facet_specs(n: int = 2, latent_dim: int = 3, n_clusters: int = 4) -> list[FacetSpec]:
    """``n`` facet specs for contract checks."""
    return [FacetSpec(j, latent_dim, n_clusters) for j in range(n)]


# -- helpers: one per kind of assertion ---------------------------------------------------------

def _config(cls: type[Component], config: Any) -> Any:
    return config if config is not None else cls.Config()


def _form(t: Tensor) -> str:
    """``(2, 5, 3) float32``: how a tensor argument is named in messages."""
    return f"{tuple(t.shape)} {str(t.dtype).removeprefix('torch.')}"


def _resolve(device: str | torch.device) -> torch.device:
    """``device`` as tensors report it (``cuda`` -> ``cuda:0``)."""
    return torch.empty(0, device=device).device


def _call(what: str, expected: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``; an exception it raises becomes an AssertionError naming the call."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        raise AssertionError(f"{what} raised {type(exc).__name__}: {exc}; expected {expected}") from exc


def _expect_tensor(value: Any, what: str, shape: Sequence[int], meaning: str, *, dtype: torch.dtype | None = None,
                   device: torch.device | None = None, finite: bool = True) -> Tensor:
    """``value`` is a tensor of ``shape`` (described by ``meaning``), ``dtype`` and ``device``, all finite."""
    shape = tuple(shape)
    assert isinstance(value, Tensor), \
        f"{what} returned {type(value).__name__}; expected a tensor of shape {shape} = ({meaning})"
    assert tuple(value.shape) == shape, \
        f"{what} returned shape {tuple(value.shape)}; expected {shape} = ({meaning})"
    assert dtype is None or value.dtype == dtype, f"{what} returned dtype {value.dtype}; expected {dtype}"
    assert device is None or value.device == device, f"{what} returned a tensor on {value.device}; expected {device}"
    if finite:
        bad = int((~torch.isfinite(value)).sum())
        assert bad == 0, f"{what} returned {bad} non-finite values of {value.numel()}; expected all finite"
    return value


def _returns(what: str, shape: Sequence[int], meaning: str, fn: Callable[..., Any], *args: Any,
             dtype: torch.dtype | None = None, device: torch.device | None = None, **kwargs: Any) -> Tensor:
    """Call ``fn`` and expect a finite tensor of ``shape``, ``dtype`` on ``device``."""
    expected = f"a tensor of shape {tuple(shape)} = ({meaning})"
    value = _call(what, expected, fn, *args, **kwargs)
    return _expect_tensor(value, what, shape, meaning, dtype=dtype, device=device)


def _expect_close(actual: Tensor, expected: Tensor, what: str, why: str, *, rtol: float = 1e-4,
                  atol: float = 1e-4) -> None:
    """``actual`` equals ``expected`` within tolerance; ``why`` says what the two should agree on."""
    expected = expected.to(dtype=actual.dtype, device=actual.device)
    assert actual.shape == expected.shape, \
        f"{what}: {why}; got shape {tuple(actual.shape)} against {tuple(expected.shape)}"
    diff = float((actual.detach() - expected.detach()).abs().max()) if actual.numel() else 0.0
    assert torch.allclose(actual, expected, rtol=rtol, atol=atol), \
        f"{what}: {why}; they differ by up to {diff:.4g} (tolerance rtol={rtol}, atol={atol})"


def _expect_gradients(what: str, output: Tensor, inputs: Mapping[str, Tensor] | None = None,
                      module: nn.Module | None = None) -> None:
    """``output.sum()`` has a finite gradient w.r.t. every tensor in ``inputs`` and, when
    ``module`` has trainable parameters, w.r.t. at least one of them."""
    inputs = dict(inputs or {})
    params = [p for p in module.parameters() if p.requires_grad] if module is not None else []
    if not inputs and not params:
        return
    wanted = ", ".join([*inputs, *(["its parameters"] if params else [])])
    assert output.requires_grad, \
        f"{what} returned a tensor without gradient (requires_grad=False); expected it differentiable w.r.t. {wanted}"
    grads = torch.autograd.grad(output.float().sum(), [*inputs.values(), *params], allow_unused=True,
                                retain_graph=True)
    for name, grad in zip(inputs, grads):
        assert grad is not None, f"{what}: no gradient reaches {name}; expected the output differentiable w.r.t. {name}"
        assert torch.isfinite(grad).all(), f"{what}: the gradient w.r.t. {name} has non-finite values"
    if params:
        reached = [g for g in grads[len(inputs):] if g is not None]
        assert reached, f"{what}: no gradient reaches any parameter of {type(module).__name__}; expected some to learn"
        assert all(torch.isfinite(g).all() for g in reached), \
            f"{what}: a gradient w.r.t. {type(module).__name__}'s parameters has non-finite values"


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Build under ``dtype`` as torch's default dtype, as the tests' float64 fixture does."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _seeded(check: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``check`` under seed 0 and restore the global CPU and CUDA random states afterwards."""

    @functools.wraps(check)
    def run(*args: Any, **kwargs: Any) -> Any:
        cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(0)
            return check(*args, **kwargs)

    return run


def _rng_state(device: torch.device) -> Tensor:
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()


def _bf16_autocast(device: torch.device) -> torch.autocast:
    """The autocast ``trainer.precision: bf16`` runs the networks under."""
    return torch.autocast(device.type, dtype=torch.bfloat16)


def _alpha_forms(n: int, device: torch.device, values: Sequence[float] | None = None) -> dict[str, Any]:
    """The ways mfcf passes ``alpha_enc`` / ``alpha_dec``: omitted (all 1), Python floats (eager
    loss) and 0-dim tensors on the device (compiled loss, :meth:`Coefficients.on_device`)."""
    floats = tuple(float(v) for v in values) if values is not None else (1.0,) * n
    tensors = Coefficients(floats, floats, floats, floats).on_device(device).alpha_enc
    forms = {"floats": floats, "0-dim tensors": tensors}
    return forms if values is not None else {"omitted": None, **forms}


# -- registration ---------------------------------------------------------------------------------

def check_component_class(cls: type) -> None:
    """Registration basics: a known kind's subclass, a snake_case ``name``, a dataclass ``Config``
    that constructs with its defaults, and a docstring."""
    kinds = [kind for kind, base in KINDS.items() if issubclass(cls, base)]
    bases = ", ".join(base.__name__ for base in KINDS.values())
    assert kinds, f"{cls.__qualname__} derives from none of mfcf.api's base classes; expected one of {bases}"
    name = getattr(cls, "name", None)
    assert isinstance(name, str) and re.match(r"^[a-z][a-z0-9_]*$", name), \
        f"{cls.__qualname__}.name is {name!r}; expected a snake_case string such as 'my_{kinds[0]}'"
    assert dataclasses.is_dataclass(cls.Config), \
        f"{cls.__qualname__}.Config is {cls.Config!r}; expected a dataclass"
    _call(f"{cls.__qualname__}.Config()", "every option to have a default", cls.Config)
    assert (cls.__doc__ or "").strip(), \
        f"{cls.__qualname__} has no docstring; expected one (it is the user's manual)"


# -- encoders and decoders -----------------------------------------------------------------------

def _default_facets(cls: type[Encoder] | type[Decoder], facets: Sequence[FacetSpec] | None) -> list[FacetSpec]:
    return list(facets or facet_specs(max(2, cls.supported_facets[0])))


def _expect_posteriors(posts: Any, what: str, facets: Sequence[FacetSpec], batch: int,
                       dtype: torch.dtype | None, device: torch.device) -> list[GaussianPosterior]:
    """One :class:`GaussianPosterior` per facet, mean and log-variance (batch, D_j)."""
    assert isinstance(posts, Sequence) and len(posts) == len(facets), \
        f"{what} returned {len(posts) if isinstance(posts, Sequence) else type(posts).__name__} posteriors; " \
        f"expected a list of {len(facets)} (one per facet)"
    for f, q in zip(facets, posts):
        assert isinstance(q, GaussianPosterior), \
            f"{what} returned a {type(q).__name__} for facet {f.index}; expected a GaussianPosterior"
        for part in ("mean", "logvar"):
            _expect_tensor(getattr(q, part), f"{what} facet {f.index} {part}", (batch, f.latent_dim),
                           f"batch, latent_dim of facet {f.index}", dtype=dtype, device=device)
    return list(posts)


def _posterior_tensors(posts: Sequence[GaussianPosterior]) -> Tensor:
    return torch.cat([torch.cat([q.mean, q.logvar], -1) for q in posts], -1)


def _build(cls: type[Encoder] | type[Decoder], config: Any, data_shape: tuple[int, ...],
           facets: list[FacetSpec], dtype: torch.dtype, device: torch.device) -> Any:
    with _default_dtype(dtype):
        return cls(_config(cls, config), data_shape=data_shape, facets=facets).to(device)


@_seeded
def check_encoder(cls: type[Encoder], config: Any = None, *, data_shape: Sequence[int] = (1, 28, 28),
                  facets: Sequence[FacetSpec] | None = None, batch: int = 4,
                  device: str | torch.device = "cpu") -> Encoder:
    """One (B, D_j) diagonal Gaussian per facet for every ``alpha_enc`` form, mode, dtype and
    autocast mfcf uses; gradients reach the parameters. Returns the (float32) encoder."""
    check_component_class(cls)
    facets, device, data_shape = _default_facets(cls, facets), _resolve(device), tuple(data_shape)
    J, expected = len(facets), f"{len(facets)} posteriors of shape (batch, latent_dim)"

    def encode(enc: Encoder, x: Tensor, how: str, alpha: Any = None, dtype: torch.dtype | None = None):
        what = f"{cls.name}.forward(x: {_form(x)}{how or ')'}"
        return what, _expect_posteriors(_call(what, expected, enc, x, alpha), what, facets, len(x), dtype, device)

    enc = _build(cls, config, data_shape, facets, torch.float64, device)
    encode(enc, torch.rand(batch, *data_shape, dtype=torch.float64, device=device), "", dtype=torch.float64)
    enc = _build(cls, config, data_shape, facets, torch.float32, device)
    x = torch.rand(batch, *data_shape, device=device)
    for form, alpha in _alpha_forms(J, device).items():
        what, posts = encode(enc, x, f", alpha_enc {form}) in train mode", alpha, torch.float32)
        _expect_gradients(what, _posterior_tensors(posts), module=enc)
    with _bf16_autocast(device):
        what, posts = encode(enc, x, ") under bfloat16 autocast (trainer.precision: bf16")
    _expect_gradients(what, _posterior_tensors(posts), module=enc)
    enc.eval()
    with torch.no_grad():
        outputs = {form: _posterior_tensors(encode(enc, x, f", alpha_enc {form}) in eval mode", alpha)[1])
                   for form, alpha in _alpha_forms(J, device).items()}
        for form, out in outputs.items():
            _expect_close(out, outputs["omitted"], f"{cls.name}.forward(x, alpha_enc {form}) in eval mode",
                          "expected the posteriors of alpha_enc omitted (all 1)")
        what, one = encode(enc, x[:1], ") in eval mode")
        _expect_close(_posterior_tensors(one), outputs["omitted"][:1], what,
                      "expected row 0 of the full batch's posteriors (eval mode must not mix examples: "
                      "evaluation encodes in chunks)")
    enc.train()
    return enc


@_seeded
def check_decoder(cls: type[Decoder], config: Any = None, *, data_shape: Sequence[int] = (1, 28, 28),
                  facets: Sequence[FacetSpec] | None = None, batch: int = 4, n_samples: int = 2,
                  device: str | torch.device = "cpu") -> Decoder:
    """(..., *data_shape) output for (..., D_j) latents of every leading shape, ``alpha_dec``
    form, mode, dtype and autocast mfcf uses; a facet with ``alpha_dec = 0`` does not change the
    output; gradients reach every latent and the parameters. Returns the (float32) decoder."""
    check_component_class(cls)
    facets, device, data_shape = _default_facets(cls, facets), _resolve(device), tuple(data_shape)
    J = len(facets)

    def decode(dec: Decoder, zs: list[Tensor], how: str, alpha: Any = None, dtype: torch.dtype | None = None):
        lead = tuple(zs[0].shape[:-1])
        meaning = {1: "batch", 2: "samples, batch"}.get(len(lead), "leading dims")
        what = f"{cls.name}.forward(zs: [{', '.join(_form(z) for z in zs)}]{how or ')'}"
        return what, _returns(what, (*lead, *data_shape), f"{meaning}, *data_shape", dec, zs, alpha,
                              dtype=dtype, device=device)

    def latents(*lead: int, dtype: torch.dtype = torch.float32, grad: bool = False) -> list[Tensor]:
        return [torch.randn(*lead, f.latent_dim, dtype=dtype, device=device, requires_grad=grad) for f in facets]

    dec = _build(cls, config, data_shape, facets, torch.float64, device)
    decode(dec, latents(n_samples, batch, dtype=torch.float64), "", dtype=torch.float64)
    dec = _build(cls, config, data_shape, facets, torch.float32, device)
    tensors = _alpha_forms(J, device)["0-dim tensors"]
    for lead, (form, alpha) in (((batch,), ("omitted", None)), ((n_samples, batch), ("omitted", None)),
                                ((batch,), ("0-dim tensors", tensors))):
        zs = latents(*lead, grad=True)
        what, out = decode(dec, zs, f", alpha_dec {form}) in train mode", alpha, torch.float32)
        _expect_gradients(what, out, {f"zs[{j}]": z for j, z in enumerate(zs)}, module=dec)
    zs = latents(batch, grad=True)
    with _bf16_autocast(device):
        what, out = decode(dec, zs, ") under bfloat16 autocast (trainer.precision: bf16")
    _expect_gradients(what, out, {f"zs[{j}]": z for j, z in enumerate(zs)}, module=dec)
    dec.eval()
    with torch.no_grad():
        zs = latents(batch)
        outputs = {form: decode(dec, zs, f", alpha_dec {form}) in eval mode", alpha)[1]
                   for form, alpha in _alpha_forms(J, device).items()}
        full = outputs["omitted"]
        for form, out in outputs.items():
            _expect_close(out, full, f"{cls.name}.forward(zs, alpha_dec {form}) in eval mode",
                          "expected the output of alpha_dec omitted (all 1)")
        what, one = decode(dec, [z[:1] for z in zs], ") in eval mode")
        _expect_close(one, full[:1], what,
                      "expected row 0 of the full batch's output (eval mode must not mix examples)")
        what, expanded = decode(dec, [z[:1].expand(batch, -1) for z in zs], ", expanded from one row) in eval mode")
        _expect_close(expanded, full[:1].expand_as(full), what, "expected row 0 of the full output, repeated "
                      "(generate() holds facets fixed with .expand)")
        if J > 1:
            other = [torch.randn_like(zs[0])] + zs[1:]
            for form, alpha in _alpha_forms(J, device, [0.0] + [1.0] * (J - 1)).items():
                what, off = decode(dec, zs, f", alpha_dec {form} = (0, 1, ...)) in eval mode", alpha)
                _expect_close(decode(dec, other, "", alpha)[1], off, what.replace("zs:", "zs with zs[0] redrawn:"),
                              "expected the output for the original zs: facet 0 is switched off (alpha_dec[0] = 0)")
    dec.train()
    return dec


# -- priors ----------------------------------------------------------------------------------------

@_seeded
def check_prior(cls: type[FacetPrior], config: Any = None, *, latent_dim: int = 3, n_clusters: int = 4,
                batch: int = 5, n_samples: int = 2, device: str | torch.device = "cpu") -> FacetPrior:
    """Every method of a facet prior in float32 and float64, with z of leading dims (B,),
    (1, B) and (S, B) as mfcf's estimators pass them; sampling and ``initialise`` as the models
    call them. Returns the float32 prior (after ``initialise``)."""
    check_component_class(cls)
    device = _resolve(device)
    built = {}
    for dtype in FLOAT_DTYPES:
        with _default_dtype(dtype):
            prior = cls(_config(cls, config), latent_dim=latent_dim, n_clusters=n_clusters).to(device)
        _check_prior_densities(prior, dtype, device, batch, n_samples)
        _check_prior_sampling(prior, dtype, device)
        _check_prior_initialise(prior, dtype, device)
        built[dtype] = prior
    return built[torch.float32]


def _check_prior_densities(prior: FacetPrior, dtype: torch.dtype, device: torch.device, batch: int,
                           n_samples: int) -> None:
    name, K, D = type(prior).name, prior.n_clusters, prior.latent_dim
    what = f"{name}.log_weights()"
    log_pi = _returns(what, (K,), "n_clusters", prior.log_weights, dtype=dtype, device=device)
    _expect_close(log_pi.exp().sum(), torch.tensor(1.0), what, "expected p(c) = exp(log_weights()) to sum to 1")
    leading = {(batch,): "batch", (n_samples, batch): "samples, batch", (1, batch): "1 sample, batch"}
    for lead, meaning in leading.items():
        z = torch.randn(*lead, D, dtype=dtype, device=device, requires_grad=True)
        call = f"(z: {_form(z)})"
        per_cluster = f"{meaning}, n_clusters"
        log_n = _returns(f"{name}.component_log_prob{call}", (*lead, K), per_cluster, prior.component_log_prob, z,
                         dtype=dtype, device=device)
        _expect_gradients(f"{name}.component_log_prob{call}", log_n, {"z": z}, module=prior)
        if len(lead) > 1:
            for s in range(lead[0]):
                _expect_close(log_n[s], prior.component_log_prob(z[s]), f"{name}.component_log_prob{call}[{s}]",
                              f"expected component_log_prob(z[{s}]): leading dims are batch dims")
        joint = _returns(f"{name}.joint_log_prob{call}", (*lead, K), per_cluster, prior.joint_log_prob, z,
                         dtype=dtype, device=device)
        _expect_close(joint, log_pi + log_n, f"{name}.joint_log_prob{call}",
                      "expected log_weights() + component_log_prob(z)")
        gamma = _returns(f"{name}.responsibilities{call}", (*lead, K), per_cluster, prior.responsibilities, z,
                         dtype=dtype, device=device)
        _expect_close(gamma.sum(-1), torch.ones(lead), f"{name}.responsibilities{call}", "expected rows summing to 1")
        marginal = _returns(f"{name}.marginal_log_prob{call}", lead, meaning, prior.marginal_log_prob, z,
                            dtype=dtype, device=device)
        _expect_close(marginal, torch.logsumexp(joint, -1), f"{name}.marginal_log_prob{call}",
                      "expected logsumexp over clusters of joint_log_prob(z)")
        _expect_gradients(f"{name}.marginal_log_prob{call}", marginal, {"z": z})
    q = GaussianPosterior(torch.randn(batch, D, dtype=dtype, device=device, requires_grad=True),
                          (0.1 * torch.randn(batch, D, dtype=dtype, device=device)).requires_grad_())
    what = f"{name}.expected_component_log_prob(q: mean {_form(q.mean)}, logvar {_form(q.logvar)})"
    expected = _returns(what, (batch, K), "batch, n_clusters", prior.expected_component_log_prob, q,
                        dtype=dtype, device=device)
    _expect_gradients(what, expected, {"q.mean": q.mean, "q.logvar": q.logvar}, module=prior)
    point = GaussianPosterior(q.mean.detach(), torch.full_like(q.logvar, -30.0))
    with torch.no_grad():
        _expect_close(prior.expected_component_log_prob(point), prior.component_log_prob(point.mean),
                      f"{name}.expected_component_log_prob(q with variance ~1e-13)",
                      "expected component_log_prob(q.mean): E_q[log p(z|c)] of a point-mass q", rtol=1e-3, atol=1e-3)


def _check_prior_sampling(prior: FacetPrior, dtype: torch.dtype, device: torch.device) -> None:
    name, K, D = type(prior).name, prior.n_clusters, prior.latent_dim
    clusters = torch.arange(K, device=device).repeat(2)
    shape, meaning = (2 * K, D), "len(clusters), latent_dim"
    _returns(f"{name}.sample(clusters: {_form(clusters)})", shape, meaning, prior.sample, clusters,
             dtype=dtype, device=device)
    draws = []
    for _ in range(2):
        generator = torch.Generator(device).manual_seed(1)
        before = _rng_state(device)
        what = f"{name}.sample(clusters: {_form(clusters)}, temperature=0.5, generator=...)"
        draws.append(_returns(what, shape, meaning, prior.sample, clusters, temperature=0.5, generator=generator,
                              dtype=dtype, device=device))
        picks = f"{name}.sample_clusters(7, generator=...)"
        ids = _returns(picks, (7,), "n", prior.sample_clusters, 7, generator=generator, dtype=torch.int64,
                       device=device)
        assert 0 <= int(ids.min()) and int(ids.max()) < K, \
            f"{picks} returned ids {ids.tolist()}; expected cluster ids in 0..{K - 1}"
        assert torch.equal(before, _rng_state(device)), \
            f"{what} or {picks} changed the global random state; expected all randomness to come from the generator " \
            "(generate() promises reproducible draws)"
    _expect_close(draws[0], draws[1], f"{name}.sample(..., generator=...)",
                  "expected equal draws from equally seeded generators")
    what = f"{name}.sample(clusters: {_form(clusters)}, temperature=0.0)"
    cold = _returns(what, shape, meaning, prior.sample, clusters, temperature=0.0, dtype=dtype, device=device)
    _expect_close(cold[:K], cold[K:], what, "expected temperature 0 (zero standard deviation) to give each "
                  "cluster one point")


def _check_prior_initialise(prior: FacetPrior, dtype: torch.dtype, device: torch.device) -> None:
    """``initialise`` as the models call it: CPU float64 tensors straight from scikit-learn."""
    name, K, D = type(prior).name, prior.n_clusters, prior.latent_dim
    f64 = {"dtype": torch.float64}
    means = 10.0 * torch.eye(K, D, **f64) + torch.arange(K, **f64)[:, None]
    variances = 0.01 * (1.0 + torch.arange(K, **f64))[:, None].expand(K, D).contiguous()
    weights = torch.arange(1, K + 1, **f64) / (K * (K + 1) / 2)
    forms = {"means": (means, None, None), "means, variances": (means, variances, None),
             "means, variances, weights": (means, variances, weights)}
    for form, args in forms.items():
        what = f"{name}.initialise({form}: CPU float64)"
        _call(what, "the mixture set from these CPU float64 tensors", prior.initialise, *args)
        z = torch.randn(3, D, dtype=dtype, device=device)
        _returns(f"{name}.component_log_prob(z: {_form(z)}) after {what}", (3, K), "batch, n_clusters",
                 prior.component_log_prob, z, dtype=dtype, device=device)
        at_means = means.to(dtype=dtype, device=device)
        best = _returns(f"{name}.responsibilities(means) after {what}", (K, K), "n_clusters, n_clusters",
                        prior.responsibilities, at_means, dtype=dtype, device=device).argmax(-1).cpu()
        assert torch.equal(best, torch.arange(K)), \
            f"{name}.responsibilities(means) after {what} picked clusters {best.tolist()}; " \
            f"expected {list(range(K))} (each mean most responsible for itself)"
    with torch.no_grad():
        _expect_close(prior.log_weights().exp(), weights, f"{name}.log_weights() after {what}",
                      "expected exp(log_weights()) to equal the weights given", atol=1e-5)
        n = 2000
        clusters = torch.arange(K, device=device).repeat_interleave(n)
        z = _returns(f"{name}.sample(clusters: {_form(clusters)}) after {what}", (K * n, D),
                     "len(clusters), latent_dim", prior.sample, clusters, dtype=dtype, device=device).view(K, n, D)
        _expect_close(z.mean(1), means, f"{name}.sample() after {what}",
                      "expected the sample mean of each cluster near its initialised mean", rtol=0, atol=0.05)
        _expect_close(z.var(1), variances, f"{name}.sample() after {what}",
                      "expected the sample variance of each cluster near its initialised variance (temperature 1 "
                      "samples with the prior's standard deviation)", rtol=0.2, atol=0.0)


# -- likelihoods -----------------------------------------------------------------------------------

@_seeded
def check_likelihood(cls: type[Likelihood], config: Any = None, *,
                     info: DataInfo = DataInfo((1, 6, 6), {"label": 2}), batch: int = 3, n_samples: int = 2,
                     device: str | torch.device = "cpu") -> Likelihood:
    """log p(x|z) keeps every leading dim of ``params`` ((B, ...) -> (B,), (S, B, ...) -> (S, B)),
    finite and differentiable w.r.t. params, in float32 and float64 and for bfloat16 params under
    autocast; ``mean`` has the data's shape and range. Returns the float32 likelihood."""
    check_component_class(cls)
    device, shape = _resolve(device), tuple(info.shape)
    low, high = info.value_range
    built = {}
    for dtype in FLOAT_DTYPES:
        with _default_dtype(dtype):
            lik = cls(_config(cls, config), info=info).to(device)
        x = low + (high - low) * torch.rand(batch, *shape, dtype=dtype, device=device)
        leading = {(batch,): "batch", (n_samples, batch): "samples, batch", (1, batch): "1 sample, batch"}
        for lead, meaning in leading.items():
            params = torch.randn(*lead, *shape, dtype=dtype, device=device, requires_grad=True)
            what = f"{cls.name}.log_prob(x: {_form(x)}, params: {_form(params)})"
            lp = _returns(what, lead, meaning, lik.log_prob, x, params, dtype=dtype, device=device)
            _expect_gradients(what, lp, {"params": params}, module=lik)
            if len(lead) > 1:
                for s in range(lead[0]):
                    _expect_close(lp[s], lik.log_prob(x, params[s]), f"{what}[{s}]",
                                  f"expected log_prob(x, params[{s}]): each sample scored against the same x")
        params = 20.0 * torch.randn(batch, *shape, dtype=dtype, device=device)
        what = f"{cls.name}.mean(params: {_form(params)} of magnitude ~20)"
        mean = _returns(what, (batch, *shape), "batch, *data_shape", lik.mean, params, dtype=dtype, device=device)
        assert float(mean.min()) >= low and float(mean.max()) <= high, \
            f"{what} returned values in [{float(mean.min()):.4g}, {float(mean.max()):.4g}]; " \
            f"expected the data's value_range [{low}, {high}]"
        built[dtype] = lik
    lik = built[torch.float32]
    x = low + (high - low) * torch.rand(batch, *shape, device=device)
    params = torch.randn(batch, *shape, device=device, dtype=torch.bfloat16, requires_grad=True)
    what = f"{cls.name}.log_prob(x: {_form(x)}, params: {_form(params)}) under bfloat16 autocast"
    with _bf16_autocast(device):
        lp = _returns(what, (batch,), "batch", lik.log_prob, x, params, device=device)
    _expect_gradients(what, lp, {"params": params})
    return lik


# -- schedules -------------------------------------------------------------------------------------

def _check_coefficients(c: Any, what: str, n_facets: int) -> Coefficients:
    """J Python floats per field; alphas in [0, 1]; betas finite and >= 0."""
    assert isinstance(c, Coefficients), f"{what} returned {type(c).__name__}; expected mfcf.api.Coefficients"
    for field in dataclasses.fields(c):
        values = getattr(c, field.name)
        assert len(values) == n_facets, \
            f"{what}.{field.name} has {len(values)} values; expected {n_facets} (one per facet)"
        types = sorted({type(v).__name__ for v in values})
        assert all(isinstance(v, float) for v in values), \
            f"{what}.{field.name} holds {', '.join(types)}; " \
            "expected Python floats (a tensor would synchronise the device)"
        low, high = (0.0, 1.0) if field.name.startswith("alpha") else (0.0, math.inf)
        assert all(low <= v <= high and math.isfinite(v) for v in values), \
            f"{what}.{field.name} is {values}; expected finite values in [{low}, {high}]"
    return c


@_seeded
def check_schedule(cls: type[Schedule], config: Any = None, *, n_facets: int = 2,
                   steps_per_epoch: int = 7) -> Schedule:
    """Valid coefficients at the first, middle and last step of every epoch; a pure function of
    (epoch, step) (the same table in any call order); ``state_dict`` survives a checkpoint and
    restores an instance built with another ``steps_per_epoch``."""
    check_component_class(cls)
    config = _config(cls, config)
    epochs = cls.total_epochs(config) or 5
    sched = cls(config, n_facets=n_facets, steps_per_epoch=steps_per_epoch, epochs=epochs)
    positions = [(e, s) for e in range(epochs) for s in sorted({0, steps_per_epoch // 2, steps_per_epoch - 1})]

    def table(schedule: Schedule, order: Sequence[tuple[int, int]]) -> dict[tuple[int, int], Coefficients]:
        return {(e, s): _check_coefficients(_call(f"{cls.name}({e}, {s})", "Coefficients", schedule, e, s),
                                            f"{cls.name}({e}, {s})", n_facets) for e, s in order}

    forward = table(sched, positions)
    for e, s in positions:
        again = sched(e, s)
        assert again == forward[(e, s)], \
            f"{cls.name}({e}, {s}) returned {again} when asked again; expected {forward[(e, s)]} (a pure function)"
    backward = table(sched, positions[::-1])
    for p in positions:
        assert backward[p] == forward[p], \
            f"{cls.name}{p} returned {backward[p]} after the later positions were asked; expected {forward[p]}: " \
            "a schedule must be a pure function of (epoch, step), whatever was asked before"
    buffer = io.BytesIO()
    state = _call(f"{cls.name}.state_dict()", "a dict of plain values", sched.state_dict)
    _call(f"torch.save({cls.name}.state_dict() = {state!r})", "a picklable dict (it goes into every checkpoint)",
          torch.save, state, buffer)
    buffer.seek(0)
    saved = _call(f"torch.load(weights_only=True) of {cls.name}.state_dict() = {state!r}",
                  "plain values and tensors (checkpoints load with weights_only=True)",
                  torch.load, buffer, weights_only=True)
    clone = cls(config, n_facets=n_facets, steps_per_epoch=1, epochs=epochs)
    _call(f"{cls.name}.load_state_dict({saved!r})", "the state restored", clone.load_state_dict, saved)
    restored = table(clone, positions)
    for p in positions:
        assert restored[p] == forward[p], \
            f"{cls.name}{p} after load_state_dict(state_dict()) into an instance built with steps_per_epoch=1 " \
            f"returned {restored[p]}; expected {forward[p]} (a resumed run must continue exactly)"
    return sched


# -- datasets --------------------------------------------------------------------------------------

def check_dataset(dataset: Any, *, splits: Sequence[str] = ("train", "test")) -> dict[str, DataSplit]:
    """A built dataset's splits agree with its ``info`` (shape, dtype, value range, factors)."""
    check_component_class(type(dataset))
    info, name = dataset.info, type(dataset).name
    out = {}
    for split in splits:
        what = f"{name}.load({split!r})"
        data = _call(what, "a DataSplit", dataset.load, split)
        assert isinstance(data, DataSplit), f"{what} returned {type(data).__name__}; expected a DataSplit"
        _expect_tensor(data.images, f"{what}.images", (len(data.images), *info.shape), "N, *info.shape",
                       dtype=torch.float32)
        low, high = info.value_range
        got = (float(data.images.min()), float(data.images.max())) if len(data.images) else (low, high)
        assert low <= got[0] and got[1] <= high, \
            f"{what}.images lie in [{got[0]:.4g}, {got[1]:.4g}]; expected info.value_range [{low}, {high}]"
        assert list(data.factors) == list(info.factors), \
            f"{what}.factors are {list(data.factors)}; expected info.factors {list(info.factors)} in that order"
        for factor, labels in data.factors.items():
            assert labels.dtype == torch.int64, f"{what}.factors[{factor!r}] has dtype {labels.dtype}; expected int64"
            if len(labels):
                lo, hi = int(labels.min()), int(labels.max())
                assert 0 <= lo and hi < info.factors[factor], \
                    f"{what}.factors[{factor!r}] lie in [{lo}, {hi}]; expected 0..{info.factors[factor] - 1}"
        out[split] = data
    return out


# -- ELBO estimators -------------------------------------------------------------------------------

def _check_loss_output(out: Any, what: str, device: torch.device) -> LossOutput:
    """A finite float32 scalar loss; detached finite 0-dim float terms on ``device``."""
    assert isinstance(out, LossOutput), f"{what} returned {type(out).__name__}; expected mfcf.api.LossOutput"
    _expect_tensor(out.loss, f"{what}.loss", (), "a scalar: the batch mean", dtype=torch.float32, device=device)
    for name, value in out.terms.items():
        term = f"{what}.terms[{name!r}]"
        _expect_tensor(value, term, (), "a scalar", device=device)
        assert value.is_floating_point(), f"{term} has dtype {value.dtype}; expected a floating-point tensor"
        assert not value.requires_grad, f"{term} requires grad; expected a detached tensor (it is only logged)"
    return out


def _seeded_call(what: str, elbo: ELBO, model: LatentModel, x: Tensor, coeffs: Coefficients) -> LossOutput:
    torch.manual_seed(1)
    return _check_loss_output(_call(what, "a LossOutput", elbo, model, x, coeffs), what, x.device)


@_seeded
def check_elbo(cls: type[ELBO], model: LatentModel, x: Tensor, config: Any = None) -> LossOutput:
    """A finite float32 scalar loss and detached scalar terms for every form of coefficients
    (floats, 0-dim tensors, a progressive step), in eval mode without gradients and under
    bfloat16 autocast; gradients reach the encoder, decoder and priors. Returns the output of
    the all-ones call."""
    check_component_class(cls)
    J = len(model.priors)
    elbo = cls(_config(cls, config), n_facets=J)
    ones = Coefficients.ones(J)
    off = tuple(0.0 if j == 0 else 1.0 for j in range(J))
    forms = {"all-ones floats": ones, "all-ones 0-dim tensors (compiled loss)": ones.on_device(x.device),
             "facet 0 switched off (alpha_dec, beta 0; a progressive step)": Coefficients((1.0,) * J, off, off, off)}
    outputs = {form: _seeded_call(f"{cls.name}(model, x: {_form(x)}, coeffs {form})", elbo, model, x, coeffs)
               for form, coeffs in forms.items()}
    first = next(iter(outputs))
    what = f"{cls.name}(model, x: {_form(x)}, coeffs {first})"
    out = outputs[first]
    parts = {"encoder": model.encoder, "decoder": model.decoder,
             **{f"priors[{j}]": prior for j, prior in enumerate(model.priors)}}
    for part, module in parts.items():
        _expect_gradients(f"{what}.loss (w.r.t. the {part})", out.loss, module=module)
    tensor_form = list(outputs)[1]
    _expect_close(outputs[tensor_form].loss, out.loss, f"{cls.name}(model, x, coeffs {tensor_form}).loss",
                  "expected the loss of the same coefficients as floats (same seed)")
    with _bf16_autocast(x.device):
        bf16 = _seeded_call(f"{cls.name}(model, x: {_form(x)}, ones) under bfloat16 autocast (trainer.precision: bf16)",
                            elbo, model, x, ones)
    _expect_gradients(f"{cls.name} loss under bfloat16 autocast", bf16.loss, module=model.encoder)
    if isinstance(model, nn.Module):
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                _seeded_call(f"{cls.name}(model, x: {_form(x)}, ones) in eval mode under torch.no_grad()",
                             elbo, model, x, ones)
        finally:
            model.train(was_training)
    return out
