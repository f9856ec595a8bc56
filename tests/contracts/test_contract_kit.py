"""The contract kit itself (``mfcf.testing``): small deliberately broken components, each of
which its check must reject with an ``AssertionError`` whose message names the method, what was
expected and what came back. Reference components written here pass every check, so each
rejection is down to the one thing its subclass breaks.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mfcf import testing
from mfcf.api import (
    Coefficients, DataInfo, Dataset, DataSplit, Decoder, ELBO, EmptyConfig, Encoder, FacetPrior, GaussianPosterior,
    Likelihood, LossOutput, Schedule, as_coefficients, full_precision, scaled,
)

LOG_2PI = math.log(2 * math.pi)
SHAPE = (1, 4, 4)
INFO = DataInfo(SHAPE, {"label": 2}, "bernoulli")


def rejects(check, *args, words, **kwargs) -> AssertionError:
    """``check(*args, **kwargs)`` fails with an AssertionError whose message holds every word."""
    with pytest.raises(AssertionError) as caught:
        check(*args, **kwargs)
    message = str(caught.value)
    missing = [w for w in words if w not in message]
    assert not missing, f"the message lacks {missing}:\n{message}"
    return caught.value


# -- reference components: correct, small, self-contained ---------------------------------------

class GoodPrior(FacetPrior):
    """A diagonal Gaussian mixture with learned weights, means and log-variances."""

    name = "good_prior"
    Config = EmptyConfig

    def __init__(self, config=None, *, latent_dim=1, n_clusters=1):
        super().__init__(config, latent_dim=latent_dim, n_clusters=n_clusters)
        self.logits = nn.Parameter(torch.zeros(n_clusters))
        self.means = nn.Parameter(torch.randn(n_clusters, latent_dim))
        self.log_var = nn.Parameter(torch.full((n_clusters, latent_dim), math.log(0.1)))

    def log_weights(self):
        return torch.log_softmax(self.logits, dim=-1)

    def component_log_prob(self, z):
        diff = z.unsqueeze(-2) - self.means
        return -0.5 * (diff.square() / self.log_var.exp() + self.log_var + LOG_2PI).sum(-1)

    def expected_component_log_prob(self, q):
        diff_sq = (q.mean.unsqueeze(-2) - self.means).square() + q.var.unsqueeze(-2)
        return -0.5 * (diff_sq / self.log_var.exp() + self.log_var + LOG_2PI).sum(-1)

    def sample(self, clusters, *, temperature=1.0, generator=None):
        means = self.means[clusters]
        eps = torch.randn(means.shape, generator=generator, dtype=means.dtype, device=means.device)
        return means + temperature * (0.5 * self.log_var[clusters]).exp() * eps

    @torch.no_grad()
    def initialise(self, means, variances=None, weights=None):
        self.means.copy_(means)
        if variances is not None:
            self.log_var.copy_(variances.log())
        if weights is not None:
            self.logits.copy_(weights.log())


class GoodEncoder(Encoder):
    """One linear head per facet on the flattened image; ``alpha_enc[j]`` scales its input."""

    name = "good_encoder"
    Config = EmptyConfig

    def __init__(self, config=None, *, data_shape=(), facets=()):
        super().__init__(config, data_shape=data_shape, facets=facets)
        self.heads = nn.ModuleList(nn.Linear(math.prod(data_shape), 2 * f.latent_dim) for f in facets)

    def features(self, x):
        return x.flatten(1)

    def forward(self, x, alpha_enc=None):
        h = self.features(x)
        alpha = as_coefficients(alpha_enc, len(self.facets))
        return [GaussianPosterior(*head(scaled(h, a)).chunk(2, dim=-1)) for head, a in zip(self.heads, alpha)]


class GoodDecoder(Decoder):
    """A bias plus one linear map per facet, ``alpha_dec[j]`` scaling facet j's."""

    name = "good_decoder"
    Config = EmptyConfig

    def __init__(self, config=None, *, data_shape=(), facets=()):
        super().__init__(config, data_shape=data_shape, facets=facets)
        self.rungs = nn.ModuleList(nn.Linear(f.latent_dim, math.prod(data_shape), bias=False) for f in facets)
        self.bias = nn.Parameter(torch.zeros(math.prod(data_shape)))

    def latent(self, z):
        return z

    def forward(self, zs, alpha_dec=None):
        alpha = as_coefficients(alpha_dec, len(self.facets))
        out = self.bias + sum(scaled(rung(self.latent(z)), a) for rung, z, a in zip(self.rungs, zs, alpha))
        return out.unflatten(-1, self.data_shape)


class GoodLikelihood(Likelihood):
    """Bernoulli on logits, summed over pixels, keeping every leading dim of ``params``."""

    name = "good_likelihood"
    Config = EmptyConfig

    def log_prob(self, x, params):
        bce = F.binary_cross_entropy_with_logits(params, x.expand_as(params), reduction="none")
        return -bce.flatten(-len(SHAPE)).sum(-1)

    def mean(self, params):
        return torch.sigmoid(params)


class GoodSchedule(Schedule):
    """Alphas 1; betas warmed up linearly over the first 10 batches."""

    name = "good_schedule"
    Config = EmptyConfig

    def beta(self, epoch, step):
        return min(1.0, (epoch * self.steps_per_epoch + step) / 10)

    def __call__(self, epoch, step):
        one, beta = (1.0,) * self.n_facets, (self.beta(epoch, step),) * self.n_facets
        return Coefficients(one, one, beta, beta)


class GoodELBO(ELBO):
    """Single-sample collapsed ELBO; densities in float32 whatever the autocast."""

    name = "good_elbo"
    Config = EmptyConfig

    def kl(self, prior, q, z):
        return (q.log_prob(z) - prior.marginal_log_prob(z)).mean()

    def terms(self, recon, kls):
        return {"recon": recon.detach(), "kl": torch.stack(kls).sum().detach()}

    def __call__(self, model, x, coeffs):
        posteriors = [q.full_precision() for q in model.encoder(x, coeffs.alpha_enc)]
        zs = [q.rsample() for q in posteriors]
        params = full_precision(model.decoder(zs, coeffs.alpha_dec))
        with torch.autocast(x.device.type, enabled=False):
            recon_each = model.likelihood.log_prob(x, params)
            kls = [self.kl(prior, q, z) for prior, q, z in zip(model.priors, posteriors, zs)]
        loss = self.reduce(-recon_each) + sum(scaled(kl, b) for kl, b in zip(kls, coeffs.beta_z))
        return LossOutput(loss, self.terms(recon_each.mean(), kls))

    def reduce(self, per_example):
        return per_example.mean()


@dataclasses.dataclass
class GoodDatasetConfig:
    n: int = 6


class GoodDataset(Dataset):
    """Six random 4x4 images with a binary label."""

    name = "good_dataset"
    Config = GoodDatasetConfig

    @property
    def info(self):
        return INFO

    def images(self):
        return torch.rand(self.config.n, *SHAPE)

    def load(self, split):
        return DataSplit(self.images(), {"label": torch.arange(self.config.n) % 2})


def small_model(encoder=GoodEncoder, decoder=GoodDecoder, prior=GoodPrior):
    facets = testing.facet_specs(2, latent_dim=2, n_clusters=3)
    model = nn.Module()
    model.encoder = encoder(data_shape=SHAPE, facets=facets)
    model.decoder = decoder(data_shape=SHAPE, facets=facets)
    model.priors = nn.ModuleList(prior(latent_dim=2, n_clusters=3) for _ in facets)
    model.likelihood = GoodLikelihood(info=INFO)
    return model


def run_elbo_check(cls):
    torch.manual_seed(0)
    return testing.check_elbo(cls, small_model(), torch.rand(6, *SHAPE))


REFERENCE_CHECKS = {
    "prior": lambda: testing.check_prior(GoodPrior),
    "encoder": lambda: testing.check_encoder(GoodEncoder, data_shape=SHAPE),
    "decoder": lambda: testing.check_decoder(GoodDecoder, data_shape=SHAPE),
    "likelihood": lambda: testing.check_likelihood(GoodLikelihood, info=INFO),
    "schedule": lambda: testing.check_schedule(GoodSchedule),
    "elbo": lambda: run_elbo_check(GoodELBO),
    "dataset": lambda: testing.check_dataset(GoodDataset()),
}


@pytest.mark.parametrize("kind", list(REFERENCE_CHECKS))
def test_reference_components_pass(kind):
    """The reference components honour every contract, so each rejection below is down to the
    one method its subclass breaks."""
    REFERENCE_CHECKS[kind]()


def test_checks_leave_the_global_random_state_alone():
    state = torch.get_rng_state()
    testing.check_prior(GoodPrior)
    assert torch.equal(state, torch.get_rng_state())


# -- priors ----------------------------------------------------------------------------------------

class TransposedPrior(GoodPrior):
    """component_log_prob returns (K, B) for a (B, D) batch."""

    name = "transposed_prior"

    def component_log_prob(self, z):
        return super().component_log_prob(z).mT


class MatrixOnlyPrior(GoodPrior):
    """component_log_prob only accepts 2-D (B, D) input: crashes on the ELBO's (S, B, D) samples."""

    name = "matrix_only_prior"

    def component_log_prob(self, z):
        precision = (-self.log_var).exp()
        quad = torch.einsum("bd,kd->bk", z.square(), precision) \
            - 2 * torch.einsum("bd,kd->bk", z, self.means * precision)
        return -0.5 * (quad + (self.means.square() * precision + self.log_var + LOG_2PI).sum(-1))


class SampleMixingPrior(GoodPrior):
    """component_log_prob handles (S, B, D) but scores every sample against the first one."""

    name = "sample_mixing_prior"

    def component_log_prob(self, z):
        out = super().component_log_prob(z)
        return out[:1].expand_as(out) if z.dim() > 2 else out


class UnnormalisedPrior(GoodPrior):
    """log_weights returns the raw logits."""

    name = "unnormalised_prior"

    def log_weights(self):
        return self.logits


class Float64ExpectationPrior(GoodPrior):
    """expected_component_log_prob returns float64 whatever the input dtype."""

    name = "float64_expectation_prior"

    def expected_component_log_prob(self, q):
        return super().expected_component_log_prob(q).double()


class VarianceFreeExpectationPrior(GoodPrior):
    """expected_component_log_prob ignores q's variance: no gradient reaches q.logvar."""

    name = "variance_free_expectation_prior"

    def expected_component_log_prob(self, q):
        return self.component_log_prob(q.mean)


class DetachingPrior(GoodPrior):
    """component_log_prob detaches z, so the encoder learns nothing from the KL terms."""

    name = "detaching_prior"

    def component_log_prob(self, z):
        return super().component_log_prob(z.detach())


class GlobalRNGPrior(GoodPrior):
    """sample ignores the generator and draws from the global random state."""

    name = "global_rng_prior"

    def sample(self, clusters, *, temperature=1.0, generator=None):
        return super().sample(clusters, temperature=temperature, generator=None)


class DataAssigningPrior(GoodPrior):
    """initialise assigns ``.data``, so CPU float64 means turn a float32 prior float64."""

    name = "data_assigning_prior"

    def initialise(self, means, variances=None, weights=None):
        self.means.data = means


class VarianceIgnoringPrior(GoodPrior):
    """initialise sets the means only, whatever variances it is given."""

    name = "variance_ignoring_prior"

    def initialise(self, means, variances=None, weights=None):
        super().initialise(means, None, weights)


@pytest.mark.parametrize("cls, words", [
    pytest.param(TransposedPrior, ["transposed_prior.component_log_prob(z: (5, 3) float32)",
                                   "returned shape (4, 5)", "expected (5, 4) = (batch, n_clusters)"], id="transposed"),
    pytest.param(SampleMixingPrior, ["sample_mixing_prior.component_log_prob(z: (2, 5, 3) float32)[1]",
                                     "expected component_log_prob(z[1])"], id="mixes-samples"),
    pytest.param(UnnormalisedPrior, ["unnormalised_prior.log_weights()", "expected p(c)", "sum to 1"],
                 id="log-weights-unnormalised"),
    pytest.param(Float64ExpectationPrior, ["float64_expectation_prior.expected_component_log_prob(",
                                           "returned dtype torch.float64", "expected torch.float32"], id="dtype"),
    pytest.param(VarianceFreeExpectationPrior, ["variance_free_expectation_prior.expected_component_log_prob(",
                                                "no gradient reaches q.logvar"], id="expectation-ignores-variance"),
    pytest.param(DetachingPrior, ["detaching_prior.component_log_prob(z: (5, 3) float32)",
                                  "no gradient reaches z"], id="no-gradient-to-z"),
    pytest.param(GlobalRNGPrior, ["global_rng_prior.sample(", "generator=",
                                  "changed the global random state"], id="ignores-generator"),
    pytest.param(DataAssigningPrior, ["data_assigning_prior.component_log_prob(z: (3, 3) float32) after",
                                      "initialise(means: CPU float64)", "returned dtype torch.float64",
                                      "expected torch.float32"], id="initialise-changes-dtype"),
    pytest.param(VarianceIgnoringPrior, ["variance_ignoring_prior.sample() after",
                                         "initialise(means, variances", "expected the sample variance"],
                 id="initialise-ignores-variances"),
])
def test_check_prior_rejects_a_broken_prior(cls, words):
    rejects(testing.check_prior, cls, words=words)


def test_check_prior_rejects_a_prior_that_only_accepts_2d_input():
    """Such a prior passed the old kit, then crashed training under mfcvae_collapsed n_samples=2
    with a raw traceback; now the check names the call form and keeps the original error."""
    error = rejects(testing.check_prior, MatrixOnlyPrior,
                    words=["matrix_only_prior.component_log_prob(z: (2, 5, 3) float32) raised RuntimeError",
                           "expected a tensor of shape (2, 5, 4) = (samples, batch, n_clusters)"])
    assert isinstance(error.__cause__, RuntimeError)


# -- encoders --------------------------------------------------------------------------------------

class TransposedEncoder(GoodEncoder):
    """Posteriors of shape (D, B)."""

    name = "transposed_encoder"

    def forward(self, x, alpha_enc=None):
        return [GaussianPosterior(q.mean.T, q.logvar.T) for q in super().forward(x, alpha_enc)]


class BatchMixingEncoder(GoodEncoder):
    """Centres the features over the batch even in eval mode."""

    name = "batch_mixing_encoder"

    def features(self, x):
        h = x.flatten(1)
        return h - h.mean(0)


class TupleEncoder(GoodEncoder):
    """Returns (mean, logvar) tuples of its own instead of GaussianPosterior."""

    name = "tuple_encoder"

    def forward(self, x, alpha_enc=None):
        return [(q.mean, q.logvar) for q in super().forward(x, alpha_enc)]


class FrozenEncoder(GoodEncoder):
    """Computes its posteriors without gradient."""

    name = "frozen_encoder"

    def forward(self, x, alpha_enc=None):
        with torch.no_grad():
            return super().forward(x, alpha_enc)


@pytest.mark.parametrize("cls, words", [
    pytest.param(TransposedEncoder, ["transposed_encoder.forward(x: (4, 1, 4, 4) float64)", "facet 0 mean",
                                     "returned shape (3, 4)", "expected (4, 3) = (batch, latent_dim of facet 0)"],
                 id="wrong-shape"),
    pytest.param(BatchMixingEncoder, ["batch_mixing_encoder.forward(x: (1, 1, 4, 4) float32) in eval mode",
                                      "expected row 0 of the full batch's posteriors"], id="mixes-examples"),
    pytest.param(TupleEncoder, ["tuple_encoder.forward(", "returned a tuple for facet 0",
                                "expected a GaussianPosterior"], id="not-a-posterior"),
    pytest.param(FrozenEncoder, ["frozen_encoder.forward(", "without gradient", "its parameters"], id="no-gradient"),
])
def test_check_encoder_rejects_a_broken_encoder(cls, words):
    rejects(testing.check_encoder, cls, data_shape=SHAPE, words=words)


# -- decoders --------------------------------------------------------------------------------------

class AlphaIgnoringDecoder(GoodDecoder):
    """Ignores alpha_dec: a switched-off facet still changes the output."""

    name = "alpha_ignoring_decoder"

    def forward(self, zs, alpha_dec=None):
        return super().forward(zs)


class DetachingDecoder(GoodDecoder):
    """Detaches the latents: the encoder gets no gradient from the reconstruction."""

    name = "detaching_decoder"

    def latent(self, z):
        return z.detach()


class MatrixOnlyDecoder(GoodDecoder):
    """Only accepts (N, D_j) latents."""

    name = "matrix_only_decoder"

    def forward(self, zs, alpha_dec=None):
        return super().forward(zs, alpha_dec).view(len(zs[0]), *self.data_shape)


@pytest.mark.parametrize("cls, words", [
    pytest.param(AlphaIgnoringDecoder, ["alpha_ignoring_decoder.forward(", "alpha_dec floats = (0, 1, ...)",
                                        "facet 0 is switched off"], id="ignores-alpha"),
    pytest.param(DetachingDecoder, ["detaching_decoder.forward(", "no gradient reaches zs[0]"], id="no-gradient-to-z"),
    pytest.param(MatrixOnlyDecoder, ["matrix_only_decoder.forward(zs: [(2, 4, 3) float64, (2, 4, 3) float64])",
                                     "raised RuntimeError", "expected a tensor of shape (2, 4, 1, 4, 4)"],
                 id="2d-only"),
])
def test_check_decoder_rejects_a_broken_decoder(cls, words):
    rejects(testing.check_decoder, cls, data_shape=SHAPE, words=words)


# -- likelihoods -----------------------------------------------------------------------------------

class SampleDroppingLikelihood(GoodLikelihood):
    """Averages the sample dimension away: (S, B, ...) params give (B,)."""

    name = "sample_dropping_likelihood"

    def log_prob(self, x, params):
        lp = super().log_prob(x, params)
        return lp.mean(0) if params.dim() > x.dim() else lp


class SampleMixingLikelihood(GoodLikelihood):
    """Pairs the flattened (S * B) params with x repeated example-wise: the wrong x per sample."""

    name = "sample_mixing_likelihood"

    def log_prob(self, x, params):
        if params.dim() == x.dim():
            return super().log_prob(x, params)
        flat = params.flatten(0, 1)
        return super().log_prob(x.repeat_interleave(len(flat) // len(x), 0), flat).view(params.shape[:2])


class UnboundedMeanLikelihood(GoodLikelihood):
    """``mean`` returns the raw logits."""

    name = "unbounded_mean_likelihood"

    def mean(self, params):
        return params


@pytest.mark.parametrize("cls, words", [
    pytest.param(SampleDroppingLikelihood, ["sample_dropping_likelihood.log_prob(x: (3, 1, 4, 4) float32, "
                                            "params: (2, 3, 1, 4, 4) float32)", "returned shape (3,)",
                                            "expected (2, 3) = (samples, batch)"], id="drops-sample-dim"),
    pytest.param(SampleMixingLikelihood, ["sample_mixing_likelihood.log_prob(", "params: (2, 3, 1, 4, 4)",
                                          "expected log_prob(x, params[0])"], id="mixes-samples"),
    pytest.param(UnboundedMeanLikelihood, ["unbounded_mean_likelihood.mean(params: (3, 1, 4, 4) float32",
                                           "expected the data's value_range [0.0, 1.0]"], id="mean-out-of-range"),
])
def test_check_likelihood_rejects_a_broken_likelihood(cls, words):
    rejects(testing.check_likelihood, cls, info=INFO, words=words)


# -- schedules -------------------------------------------------------------------------------------

class CountingSchedule(GoodSchedule):
    """Warms up with the number of calls instead of (epoch, step): not pure."""

    name = "counting_schedule"

    def beta(self, epoch, step):
        self.calls = getattr(self, "calls", 0) + 1
        return min(1.0, self.calls / 10)


class TensorSchedule(GoodSchedule):
    """Returns tensors instead of Python floats."""

    name = "tensor_schedule"

    def __call__(self, epoch, step):
        c = super().__call__(epoch, step)
        return Coefficients(*(tuple(torch.tensor(v) for v in getattr(c, f.name)) for f in dataclasses.fields(c)))


class OneFacetSchedule(GoodSchedule):
    """Returns one coefficient whatever the number of facets."""

    name = "one_facet_schedule"

    def __call__(self, epoch, step):
        return Coefficients.ones(1)


class ForgetfulSchedule(GoodSchedule):
    """Its coefficients depend on steps_per_epoch, which its state_dict leaves out."""

    name = "forgetful_schedule"

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


class UnsavableSchedule(GoodSchedule):
    """Keeps a Python object in its state_dict, which a weights_only checkpoint cannot load."""

    name = "unsavable_schedule"

    def state_dict(self):
        return {"steps_per_epoch": self.steps_per_epoch, "config": self.config}


@pytest.mark.parametrize("cls, words", [
    pytest.param(CountingSchedule, ["counting_schedule(0, 0)", "when asked again", "a pure function"], id="impure"),
    pytest.param(TensorSchedule, ["tensor_schedule(0, 0).alpha_enc holds Tensor", "expected Python floats"],
                 id="tensors"),
    pytest.param(OneFacetSchedule, ["one_facet_schedule(0, 0).alpha_enc has 1 values", "expected 2"],
                 id="wrong-length"),
    pytest.param(ForgetfulSchedule, ["forgetful_schedule(1, 0) after load_state_dict(state_dict())",
                                     "returned Coefficients(", "expected Coefficients("], id="state-not-restored"),
    pytest.param(UnsavableSchedule, ["torch.load(weights_only=True) of unsavable_schedule.state_dict()",
                                     "raised UnpicklingError"], id="state-not-checkpointable"),
])
def test_check_schedule_rejects_a_broken_schedule(cls, words):
    rejects(testing.check_schedule, cls, words=words)


# -- ELBO estimators -------------------------------------------------------------------------------

class PerExampleELBO(GoodELBO):
    """Returns one loss per example instead of the batch mean."""

    name = "per_example_elbo"

    def reduce(self, per_example):
        return per_example


class UndetachedTermsELBO(GoodELBO):
    """Logs terms that still carry the graph."""

    name = "undetached_terms_elbo"

    def terms(self, recon, kls):
        return {"recon": recon, "kl": torch.stack(kls).sum()}


class PriorFreeELBO(GoodELBO):
    """KL to a standard normal: the priors never learn."""

    name = "prior_free_elbo"

    def kl(self, prior, q, z):
        return (q.log_prob(z) + 0.5 * (z.square() + LOG_2PI).sum(-1)).mean()


class FloatOnlyBetaELBO(GoodELBO):
    """Reads the betas only when they are floats: the compiled loss (0-dim tensors) gets another one."""

    name = "float_only_beta_elbo"

    def __call__(self, model, x, coeffs):
        betas = tuple(b if isinstance(b, float) else 0.0 for b in coeffs.beta_z)
        return super().__call__(model, x, dataclasses.replace(coeffs, beta_z=betas))


@pytest.mark.parametrize("cls, words", [
    pytest.param(PerExampleELBO, ["per_example_elbo(model, x: (6, 1, 4, 4) float32, coeffs all-ones floats).loss",
                                  "returned shape (6,)", "expected () = (a scalar: the batch mean)"],
                 id="loss-not-scalar"),
    pytest.param(UndetachedTermsELBO, ["undetached_terms_elbo(", ".terms['recon'] requires grad",
                                       "expected a detached tensor"], id="terms-not-detached"),
    pytest.param(PriorFreeELBO, ["prior_free_elbo(", "w.r.t. the priors[0]", "no gradient reaches any parameter"],
                 id="no-gradient-to-priors"),
    pytest.param(FloatOnlyBetaELBO, ["float_only_beta_elbo(model, x, coeffs all-ones 0-dim tensors",
                                     "expected the loss of the same coefficients as floats"],
                 id="tensor-coefficients-differ"),
])
def test_check_elbo_rejects_a_broken_elbo(cls, words):
    rejects(run_elbo_check, cls, words=words)


# -- datasets and registration ---------------------------------------------------------------------

class Float64Dataset(GoodDataset):
    """Images in float64."""

    name = "float64_dataset"

    def images(self):
        return super().images().double()


class OutOfRangeDataset(GoodDataset):
    """Images in [0, 255] while info says [0, 1]."""

    name = "out_of_range_dataset"

    def images(self):
        return 255.0 * super().images()


@pytest.mark.parametrize("cls, words", [
    pytest.param(Float64Dataset, ["float64_dataset.load('train').images", "returned dtype torch.float64",
                                  "expected torch.float32"], id="dtype"),
    pytest.param(OutOfRangeDataset, ["out_of_range_dataset.load('train').images lie in",
                                     "expected info.value_range [0.0, 1.0]"], id="value-range"),
])
def test_check_dataset_rejects_a_broken_dataset(cls, words):
    rejects(testing.check_dataset, cls(), words=words)


@dataclasses.dataclass
class NoDefaultConfig:
    width: int


class CamelNamedPrior(GoodPrior):
    """A prior whose registry name is not snake_case."""

    name = "CamelPrior"


class NoDefaultsPrior(GoodPrior):
    """A prior whose Config has an option without a default."""

    name = "no_defaults_prior"
    Config = NoDefaultConfig


class UndocumentedPrior(GoodPrior):
    name = "undocumented_prior"


@pytest.mark.parametrize("cls, words", [
    pytest.param(CamelNamedPrior, ["CamelNamedPrior.name is 'CamelPrior'", "expected a snake_case string"],
                 id="name"),
    pytest.param(NoDefaultsPrior, ["NoDefaultsPrior.Config() raised TypeError",
                                   "expected every option to have a default"], id="config-defaults"),
    pytest.param(UndocumentedPrior, ["UndocumentedPrior has no docstring", "expected one"], id="docstring"),
])
def test_check_component_class_rejects_a_broken_registration(cls, words):
    rejects(testing.check_component_class, cls, words=words)
