"""Schedules against the hand-computed table of MFCVAE.md §5.5."""

from __future__ import annotations

import copy

import pytest

from mfcf.config import validate_section
from mfcf.errors import ConfigError
from mfcf_ladder.schedules import ConstantSchedule, ProgressiveSchedule


def progressive(steps, fade, n_b, *, epochs=None, **options):
    config = ProgressiveSchedule.Config(epochs_per_step=list(steps), fade_in_batches=fade, **options)
    return ProgressiveSchedule(config, n_facets=len(steps), steps_per_epoch=n_b,
                               epochs=sum(steps) if epochs is None else epochs)


# (epochs per step, fade-in batches, N_b, epoch, batch, alpha_dec of facet 0) -- every row of §5.5;
# facet 1 is always on (alpha_dec = beta = 1) and beta of facet 0 equals its alpha_dec.
TABLE = [
    ([201, 201], 15000, 118, 0, 0, 0.0),
    ([201, 201], 15000, 118, 100, 57, 0.0),
    ([201, 201], 15000, 118, 200, 117, 0.0),
    ([201, 201], 15000, 118, 201, 0, 0.0),
    ([201, 201], 15000, 118, 201, 117, 0.0078),
    ([201, 201], 15000, 118, 250, 10, 0.386133),
    ([201, 201], 15000, 118, 328, 0, 0.999067),
    ([201, 201], 15000, 118, 328, 14, 1.0),
    ([201, 201], 15000, 118, 401, 117, 1.0),
    ([101, 301], 15000, 489, 101, 0, 0.0),
    ([101, 301], 15000, 489, 131, 0, 0.978),
    ([101, 301], 15000, 489, 131, 330, 1.0),
    ([101, 301], 2000, 26, 150, 0, 0.637),
    ([101, 301], 2000, 26, 177, 24, 1.0),
]


@pytest.mark.parametrize("steps,fade,n_b,epoch,batch,alpha", TABLE)
def test_hand_computed_table(steps, fade, n_b, epoch, batch, alpha):
    c = progressive(steps, fade, n_b)(epoch, batch)
    assert c.alpha_dec[0] == pytest.approx(alpha, abs=5e-7)
    assert c.beta_z[0] == c.beta_c[0] == c.alpha_dec[0]
    assert c.alpha_dec[1] == c.beta_z[1] == c.beta_c[1] == 1.0
    assert c.alpha_enc == (1.0, 1.0)


def test_fade_is_linear_in_batches_and_clipped_at_one():
    s = progressive([2, 3], 10, 4)
    # t = b + 4 (e - 2): 0, 1, ..., clipped from t = 10
    values = [s(e, b).alpha_dec[0] for e in range(2, 5) for b in range(4)]
    assert values == pytest.approx([min(t / 10, 1.0) for t in range(12)])


def test_three_facets_introduced_top_down():
    s = progressive([2, 2, 2], 8, 4)
    assert s(1, 3).alpha_dec == (0.0, 0.0, 1.0)  # step 0
    assert s(2, 2).alpha_dec == (0.0, 0.25, 1.0)  # step 1: facet 1 fading in
    assert s(2, 2).beta_z == (0.0, 0.25, 1.0)
    assert s(4, 6).alpha_dec == (0.75, 1.0, 1.0)  # step 2: facet 0 fading in
    assert s(5, 3).alpha_dec == (0.875, 1.0, 1.0)  # t = 3 + 4 = 7 of 8
    assert s(6, 0).alpha_dec == (1.0, 1.0, 1.0)
    assert all(s(e, 0).alpha_enc == (1.0, 1.0, 1.0) for e in range(6))


def test_pretraining_weights_of_facets_not_yet_on():
    s = progressive([2, 2, 2], 10, 5, pretrain_beta_z=0.2, pretrain_beta_c=0.5)
    c = s(0, 0)
    assert c.beta_z == (0.2, 0.2, 1.0) and c.beta_c == (0.5, 0.5, 1.0) and c.alpha_dec == (0.0, 0.0, 1.0)
    c = s(2, 5)  # t = 5: half way through facet 1's fade, from the pretraining weight to 1
    assert c.beta_z[1] == pytest.approx(0.5 * 0.8 + 0.2) and c.beta_c[1] == pytest.approx(0.75)
    assert c.alpha_dec[1] == pytest.approx(0.5)
    assert c.beta_z[0] == 0.2 and c.beta_c[0] == 0.5


def test_epoch_count_must_match_and_is_never_overridden():
    with pytest.raises(ConfigError, match="schedule.epochs_per_step") as info:
        progressive([201, 201], 15000, 118, epochs=201)
    assert info.value.key == "trainer.epochs"
    assert "402" in str(info.value)


def test_total_epochs_is_the_sum_of_the_steps():
    assert ProgressiveSchedule.total_epochs(ProgressiveSchedule.Config(epochs_per_step=[101, 301])) == 402
    assert ProgressiveSchedule.total_epochs(ProgressiveSchedule.Config()) == 402  # paper MNIST default
    assert ConstantSchedule.total_epochs(ConstantSchedule.Config()) is None


def test_one_step_per_facet():
    config = ProgressiveSchedule.Config(epochs_per_step=[3, 3, 3])
    with pytest.raises(ConfigError, match="one entry per facet") as info:
        ProgressiveSchedule(config, n_facets=2, steps_per_epoch=5, epochs=9)
    assert info.value.key == "epochs_per_step"


@pytest.mark.parametrize("section,key", [
    ({"epochs_per_step": []}, "schedule.epochs_per_step"),
    ({"epochs_per_step": [3, 0]}, "schedule.epochs_per_step"),
    ({"epochs_per_step": [3, 3], "fade_in_batches": 0}, "schedule.fade_in_batches"),
    ({"epochs_per_step": [3, 3], "pretrain_beta_z": 1.5}, "schedule.pretrain_beta_z"),
    ({"epochs_per_step": [3, 3], "kl_warmup_batches": -1}, "schedule.kl_warmup_batches"),
])
def test_bad_values_fail_at_validation(section, key):
    with pytest.raises(ConfigError) as info:
        validate_section(ProgressiveSchedule.Config, section, "schedule")
    assert info.value.key == key


def test_pure_function_and_beyond_the_last_epoch():
    s = progressive([201, 201], 15000, 118)
    before = copy.deepcopy(s.__dict__)
    assert s(250, 10) == s(250, 10)
    assert s.__dict__ == before
    assert s(402, 0).alpha_dec == (1.0, 1.0)  # evaluation after training continues the last step
    with pytest.raises(ValueError):
        s(-1, 0)


def test_state_dict_holds_steps_per_epoch_as_plain_values():
    s = progressive([201, 201], 15000, 118)
    state = s.state_dict()
    assert state == {"steps_per_epoch": 118, "epochs_per_step": [201, 201]}
    assert all(type(v) in (int, list) for v in state.values())
    other = progressive([201, 201], 15000, 117)  # e.g. a different floor/ceil (§9, D15)
    assert other(250, 10) != s(250, 10)
    other.load_state_dict(state)
    assert other(250, 10) == s(250, 10)
    with pytest.raises(ConfigError, match="original schedule"):
        progressive([101, 301], 15000, 118).load_state_dict(state)


def test_kl_warmup_multiplies_betas_only():
    s = progressive([2, 2], 10, 5, kl_warmup_batches=20)
    c = s(0, 5)  # t_global = 5 -> w = 0.25
    assert c.beta_z == (0.0, 0.25) and c.beta_c == (0.0, 0.25) and c.alpha_dec == (0.0, 1.0)
    c = s(2, 5)  # t_global = 15 -> w = 0.75; fade of facet 0 at t = 5 -> 0.5
    assert c.beta_z == pytest.approx((0.375, 0.75)) and c.alpha_dec == pytest.approx((0.5, 1.0))
    assert s(4, 0).beta_z == (1.0, 1.0)  # t_global = 20


def test_constant_schedule():
    s = ConstantSchedule(ConstantSchedule.Config(), n_facets=3, steps_per_epoch=10, epochs=5)
    c = s(4, 9)
    assert c.alpha_enc == c.alpha_dec == c.beta_z == c.beta_c == (1.0, 1.0, 1.0)
    s = ConstantSchedule(ConstantSchedule.Config(beta_z=2.0, beta_c=0.5, kl_warmup_batches=40),
                         n_facets=2, steps_per_epoch=10, epochs=5)
    assert s(0, 0).beta_z == (0.0, 0.0)
    assert s(1, 0).beta_z == (0.5, 0.5) and s(1, 0).beta_c == (0.125, 0.125)
    assert s(4, 0).beta_z == (2.0, 2.0) and s(4, 0).alpha_dec == (1.0, 1.0)
    assert s.state_dict() == {"steps_per_epoch": 10}
