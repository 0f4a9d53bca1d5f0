"""Samplers draw exactly what geno-lewm 0.2.1 draws for the same random.Random seed."""

import random

import pytest
from geno_lewm.action import EditType as RefEditType
from geno_lewm.errors import InputError as RefInputError
from geno_lewm.training import sampling as ref

from geno_lewm_jax.data import sampling as ours
from geno_lewm_jax.data.actions import EditType
from geno_lewm_jax.errors import InputError


def test_default_tables_match_reference():
    assert [(int(e.edit_type), e.weight) for e in ours.DEFAULT_EDIT_TYPE_WEIGHTS] == [
        (int(e.edit_type), e.weight) for e in ref.DEFAULT_EDIT_TYPE_WEIGHTS
    ]
    assert [(e.steps, e.weight) for e in ours.DEFAULT_ROLLOUT_STEP_MIX] == [
        (e.steps, e.weight) for e in ref.DEFAULT_ROLLOUT_STEP_MIX
    ]


@pytest.mark.parametrize("seed", range(40))
def test_same_draw_sequences(seed):
    a, b = random.Random(seed), random.Random(seed)
    for _ in range(50):
        assert int(ours.sample_edit_type(a)) == int(ref.sample_edit_type(b))
        assert ours.sample_rollout_steps(a) == ref.sample_rollout_steps(b)
    assert a.getstate() == b.getstate()


def test_custom_weights_and_counts_match():
    ow = [ours.EditTypeWeight(EditType.DEL, 3), ours.EditTypeWeight(1, 0.5), ours.EditTypeWeight(EditType.MNV, 2.25)]
    rw = [ref.EditTypeWeight(RefEditType.DEL, 3), ref.EditTypeWeight(1, 0.5), ref.EditTypeWeight(RefEditType.MNV, 2.25)]
    om = [ours.RolloutStepWeight(4, 1.0), ours.RolloutStepWeight(1, 7), ours.RolloutStepWeight(2, 0.1)]
    rm = [ref.RolloutStepWeight(4, 1.0), ref.RolloutStepWeight(1, 7), ref.RolloutStepWeight(2, 0.1)]
    for seed in range(5):
        got = ours.draw_edit_type_counts(777, rng=random.Random(seed), weights=ow)
        want = ref.draw_edit_type_counts(777, rng=random.Random(seed), weights=rw)
        assert [(int(k), v) for k, v in got.items()] == [(int(k), v) for k, v in want.items()]
        assert ours.draw_rollout_step_counts(555, rng=random.Random(seed), mix=om) == ref.draw_rollout_step_counts(
            555, rng=random.Random(seed), mix=rm
        )


def test_documented_vectors():
    counts = ours.draw_edit_type_counts(1000, rng=random.Random(0))
    assert [counts[t] for t in (EditType.SNV, EditType.INS, EditType.DEL, EditType.MNV, EditType.INDEL)] == [
        398, 199, 213, 86, 104,
    ]
    assert ours.draw_rollout_step_counts(1000, rng=random.Random(0)) == {1: 896, 2: 57, 3: 47}
    rng = random.Random(0)
    assert [int(ours.sample_edit_type(rng)) for _ in range(12)] == [3, 2, 1, 0, 1, 1, 2, 0, 1, 1, 4, 1]


BAD_CASES = [
    ("edit_weight", lambda m: m.EditTypeWeight(0, 0.0)),
    ("edit_weight", lambda m: m.EditTypeWeight(0, float("inf"))),
    ("edit_weight", lambda m: m.EditTypeWeight(0, True)),
    ("edit_weight", lambda m: m.EditTypeWeight(9, 1.0)),
    ("edit_weight", lambda m: m.EditTypeWeight("x", 1.0)),
    ("steps", lambda m: m.RolloutStepWeight(0, 1.0)),
    ("steps", lambda m: m.RolloutStepWeight(True, 1.0)),
    ("steps", lambda m: m.RolloutStepWeight(2, -1.0)),
    ("empty", lambda m: m.sample_edit_type(random.Random(0), weights=())),
    ("empty", lambda m: m.sample_rollout_steps(random.Random(0), mix=())),
    ("sv", lambda m: m.sample_edit_type(random.Random(0), weights=(m.EditTypeWeight(5, 1.0),))),
    ("dup", lambda m: m.sample_edit_type(random.Random(0), weights=(m.EditTypeWeight(0, 1), m.EditTypeWeight(0, 2)))),
    ("dup", lambda m: m.sample_rollout_steps(random.Random(0), mix=(m.RolloutStepWeight(1, 1), m.RolloutStepWeight(1, 2)))),
    ("n", lambda m: m.draw_edit_type_counts(-1, rng=random.Random(0))),
    ("n", lambda m: m.draw_rollout_step_counts(True, rng=random.Random(0))),
    ("n", lambda m: m.draw_rollout_step_counts(2.0, rng=random.Random(0))),
]


@pytest.mark.parametrize("case", BAD_CASES, ids=[c[0] + str(i) for i, c in enumerate(BAD_CASES)])
def test_same_errors(case):
    _, make = case
    with pytest.raises(RefInputError):
        make(ref)
    with pytest.raises(InputError):
        make(ours)


def test_zero_draws_and_max_steps():
    assert ours.draw_rollout_step_counts(0, rng=random.Random(1)) == {1: 0, 2: 0, 3: 0}
    assert ours.max_rollout_steps(ours.DEFAULT_ROLLOUT_STEP_MIX) == 3
