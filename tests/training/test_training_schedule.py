"""Learning-rate multipliers against geno-lewm 0.2.1's ``wsd_lr_multiplier``, bit for bit."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from geno_lewm.training import wsd_lr_multiplier as ref_multiplier

from geno_lewm_jax.errors import InputError
from geno_lewm_jax.training import wsd_lr_multiplier, wsd_schedule

TOTALS = [1, 2, 3, 4, 5, 7, 10, 11, 37, 100, 1001, 1002]
SCHEDULES = ["wsd", "cosine", "constant"]


def warmups(total: int) -> list[int]:
    return sorted({0, 1, 2, 3, 10, total - 1, total, total + 5} - {-1})


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_every_step_equals_the_reference(schedule):
    checked = 0
    for total in TOTALS:
        for warmup in warmups(total):
            if schedule == "wsd" and warmup >= total and total > 3:
                continue  # config validation refuses these; tiny horizons are still covered
            for step in range(1, total + 1):
                want = ref_multiplier(step, total_steps=total, warmup_steps=warmup, schedule=schedule)
                got = wsd_lr_multiplier(step, total_steps=total, warmup_steps=warmup, schedule=schedule)
                assert got == want, (total, warmup, step)
                checked += 1
    assert checked > 1000


def test_a_long_horizon_equals_the_reference_everywhere():
    for step in range(1, 10_001):
        assert wsd_lr_multiplier(step, total_steps=10_000, warmup_steps=1000) == ref_multiplier(
            step, total_steps=10_000, warmup_steps=1000
        )


def test_reference_test_vectors():
    def m(step, total, warmup, schedule="wsd"):
        return wsd_lr_multiplier(step, total_steps=total, warmup_steps=warmup, schedule=schedule)

    table = {
        (1, 10_000, 1000): 0.001,
        (1000, 10_000, 1000): 1.0,
        (8200, 10_000, 1000): 1.0,
        (9010, 10_000, 1000): 0.55,
        (9820, 10_000, 1000): 0.1,
        (9821, 10_000, 1000): 0.0995,
        (10_000, 10_000, 1000): 0.01,
        (1, 100, 10): 0.1,
        (99, 100, 10): 0.055,
        (9, 10, 0): 0.1,
        (10, 10, 0): 0.01,
        (1001, 1001, 1000): 1.0,
        (1002, 1002, 1000): 0.01,
    }
    for args, want in table.items():
        assert m(*args) == pytest.approx(want, abs=1e-12), args
    cosine = [m(s, 5, 0, "cosine") for s in range(1, 6)]
    np.testing.assert_allclose(cosine, [1.0, 0.853553, 0.5, 0.146447, 0.0], atol=1e-6)
    assert cosine[-1] == 0.0 and m(3, 3, 2, "constant") == 1.0


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize(("total", "warmup"), [(1, 0), (2, 0), (3, 1), (10, 0), (100, 10), (1002, 1000)])
def test_optax_schedule_is_the_multiplier_at_count_plus_one(schedule, total, warmup):
    if schedule == "wsd" and warmup >= total:
        pytest.skip("refused by config validation")
    peak = 3e-4
    fn = jax.jit(wsd_schedule(peak, total_steps=total, warmup_steps=warmup, schedule=schedule))
    got = np.asarray(jax.vmap(fn)(jnp.arange(total)))
    want = np.array([peak * ref_multiplier(c + 1, total_steps=total, warmup_steps=warmup, schedule=schedule) for c in range(total)])
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6 * peak)  # float32; cosine cancels near 0
    assert float(fn(total + 7)) == pytest.approx(want[-1], rel=2e-6, abs=1e-6 * peak)  # held past the horizon


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(step=0, total_steps=5, warmup_steps=0),
        dict(step=6, total_steps=5, warmup_steps=0),
        dict(step=True, total_steps=5, warmup_steps=0),
        dict(step=1, total_steps=0, warmup_steps=0),
        dict(step=1, total_steps=5, warmup_steps=-1),
        dict(step=1, total_steps=5, warmup_steps=0, schedule="linear"),
    ],
)
def test_bad_arguments_are_input_errors_like_the_reference(kwargs):
    step = kwargs.pop("step")
    with pytest.raises(InputError):
        wsd_lr_multiplier(step, **kwargs)
    with pytest.raises(Exception) as ref:
        ref_multiplier(step, **kwargs)
    assert type(ref.value).__name__ == "InputError"
