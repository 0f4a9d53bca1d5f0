"""Edits and edit application against geno-lewm 0.2.1 on random inputs."""

import random

import pytest
from geno_lewm import action as ref
from geno_lewm import errors as ref_errors

from geno_lewm_jax import errors
from geno_lewm_jax.data import actions as ours
from geno_lewm_jax.data import synthetic_edits

ERROR_PAIRS = {
    errors.InvalidEditError: ref_errors.InvalidEditError,
    errors.UnsupportedEditError: ref_errors.UnsupportedEditError,
    errors.OutOfWindowError: ref_errors.OutOfWindowError,
    errors.WindowMismatchError: ref_errors.WindowMismatchError,
    errors.OverlappingEditsError: ref_errors.OverlappingEditsError,
    errors.InputError: ref_errors.InputError,
}


def run_both(fn_ours, fn_ref):
    """(ok, value) for each side; errors compared by their typed pair."""
    out = []
    for fn in (fn_ours, fn_ref):
        try:
            out.append(("ok", fn()))
        except (errors.GenoLeWMError, ref_errors.GenoLeWMError) as exc:
            out.append(("err", exc))
    (ko, vo), (kr, vr) = out
    assert ko == kr, (vo, vr)
    if ko == "err":
        assert ERROR_PAIRS[type(vo)] is type(vr), (type(vo), type(vr))
        assert vo.code == vr.code
    return vo, vr


def rand_seq(rng, n, alphabet="ACGT"):
    return "".join(rng.choices(alphabet, k=n))


def edit_of_type(rng, window, kind):
    """A random RelEdit of ``kind`` anywhere in the window, edges included."""
    size = len(window)
    n_ref = {"snv": 1, "ins": 1, "del": rng.randint(2, 16), "mnv": rng.randint(2, 16), "indel": rng.randint(2, 16)}[kind]
    n_alt = {"snv": 1, "ins": rng.randint(2, 16), "del": 1, "mnv": n_ref, "indel": rng.choice([k for k in range(2, 17) if k != n_ref])}[kind]
    where = rng.random()
    if where < 0.15:
        pos = 0
    elif where < 0.3:
        pos = size - n_ref
    elif where < 0.35:
        pos = size - n_ref + rng.randint(1, 3)  # runs off the end
    else:
        pos = rng.randint(0, size - n_ref)
    ref_bases = window[pos : pos + n_ref].upper().replace("N", "A") or "A"
    if len(ref_bases) < n_ref:
        ref_bases = ref_bases + "A" * (n_ref - len(ref_bases))
    if rng.random() < 0.05:  # a deliberate REF mismatch
        ref_bases = "".join(synthetic_edits.OTHER_BASES[b][0] for b in ref_bases)
    alt = rand_seq(rng, n_alt)
    if kind in ("snv", "mnv"):
        alt = "".join(rng.choice(synthetic_edits.OTHER_BASES[b]) for b in ref_bases)
    type_id = {"snv": 0, "ins": 1, "del": 2, "mnv": 3, "indel": 4}[kind]
    return pos, type_id, ref_bases, alt


@pytest.mark.parametrize("kind", ["snv", "ins", "del", "mnv", "indel"])
def test_apply_edit_matches_reference_on_2000_edits(kind):
    rng = random.Random(["snv", "ins", "del", "mnv", "indel"].index(kind))
    seen_errors = set()
    for i in range(2000):
        size = rng.choice([33, 64, 257, 4096])
        window = rand_seq(rng, size, "ACGT" * 8 + "N")
        if rng.random() < 0.1:
            window = window.lower()
        pos, type_id, ref_bases, alt = edit_of_type(rng, window, kind)
        mine = ours.RelEdit(pos, type_id, ref_bases, alt)
        theirs = ref.RelEdit(pos, type_id, ref_bases, alt)
        for keep in (False, True):
            vo, vr = run_both(
                lambda: ours.apply_edit(window, mine, preserve_length=keep),
                lambda: ref.apply_edit(window, theirs, preserve_length=keep),
            )
            if isinstance(vo, str):
                assert vo == vr
                if keep:
                    assert len(vo) == size
            else:
                seen_errors.add(type(vo))
    assert errors.OutOfWindowError in seen_errors and errors.WindowMismatchError in seen_errors


def test_apply_edits_matches_reference():
    rng = random.Random(7)
    overlaps = 0
    for _ in range(600):
        size = rng.choice([100, 4096])
        window = rand_seq(rng, size)
        edits = []
        for _ in range(rng.randint(0, 5)):
            kind = rng.choice(["snv", "ins", "del", "mnv", "indel"])
            pos, type_id, ref_bases, alt = edit_of_type(rng, window, kind)
            if pos + len(ref_bases) <= size and window[pos : pos + len(ref_bases)] == ref_bases:  # valid edits only
                edits.append((pos, type_id, ref_bases, alt))
        mine = [ours.RelEdit(*e) for e in edits]
        theirs = [ref.RelEdit(*e) for e in edits]
        for keep in (False, True):
            vo, vr = run_both(
                lambda: ours.apply_edits(window, mine, preserve_length=keep),
                lambda: ref.apply_edits(window, theirs, preserve_length=keep),
            )
            if isinstance(vo, str):
                assert vo == vr
                assert ours.apply_edits(window, mine[::-1], preserve_length=keep) == vo
            else:
                assert vo.details == vr.details
                overlaps += 1
    assert overlaps > 10


SPEC_CASES = [
    ("22", 10, "A", "C"), ("22", 10, "A", "AT"), ("22", 10, "AT", "G"), ("22", 10, "ACG", "TTA"),
    ("22", 10, "ACG", "TT"), ("22", 10, "A" * 17, "A"), ("22", 10, "A", "C" * 17), ("22", 10, "A" * 16, "C"),
    ("", 10, "A", "C"), (None, 10, "A", "C"), ("22", 0, "A", "C"), ("22", True, "A", "C"), ("22", 1.0, "A", "C"),
    ("22", 5, "", "C"), ("22", 5, "a", "C"), ("22", 5, "N", "C"), ("22", 5, "A", "R"), ("22", 5, "A", "A"),
    ("22", 5, "AC", "AC"),
]


@pytest.mark.parametrize("args", SPEC_CASES, ids=[repr(c)[:40] for c in SPEC_CASES])
def test_editspec_validation_matches(args):
    vo, vr = run_both(lambda: ours.EditSpec(*args), lambda: ref.EditSpec(*args))
    if isinstance(vo, ours.EditSpec):
        assert int(vo.edit_type) == int(vr.edit_type)
    elif isinstance(vo, errors.UnsupportedEditError):
        assert vo.details["edit_type"] == 5 == vr.details["edit_type"]


def test_relative_to_matches():
    rng = random.Random(3)
    for _ in range(2000):
        start = rng.randint(0, 50)
        end = start + rng.randint(-2, 40)
        n_ref = rng.randint(1, 4)
        pos = rng.randint(1, 100)
        args = ("1", pos, "A" * n_ref, "C" if n_ref > 1 else "G")
        vo, vr = run_both(lambda: ours.EditSpec(*args).relative_to(start, end), lambda: ref.EditSpec(*args).relative_to(start, end))
        if isinstance(vo, ours.RelEdit):
            assert (vo.rel_pos, int(vo.edit_type), vo.ref_bases, vo.alt_bases) == (
                vr.rel_pos, int(vr.edit_type), vr.ref_bases, vr.alt_bases,
            )


@pytest.mark.parametrize(
    "args", [(-1, 0, "A", "C"), (True, 0, "A", "C"), (0, 7, "A", "C"), (0, "x", "A", "C"), (0, 0, "a", "C"), (0, 0, "A", "")]
)
def test_reledit_validation_matches(args):
    run_both(lambda: ours.RelEdit(*args), lambda: ref.RelEdit(*args))


def _sampler_windows(rng):
    yield rand_seq(rng, 300)
    yield rand_seq(rng, 4096, "ACGT" * 6 + "N")
    yield rand_seq(rng, 129)
    yield "N" * 200 + rand_seq(rng, 200)


def _same_edits(a, b):
    return [(e.rel_pos, int(e.edit_type), e.ref_bases, e.alt_bases) for e in a] == [
        (e.rel_pos, int(e.edit_type), e.ref_bases, e.alt_bases) for e in b
    ]


@pytest.mark.parametrize("seed", range(12))
def test_synthetic_samplers_match_reference(seed):
    rng = random.Random(seed)
    for window in _sampler_windows(rng):
        for n in (0, 1, 5):
            for name, kwargs in [
                ("uniform_snv", {}),
                ("uniform_snv", {"edge_margin": 10}),
                ("indel", {}),
                ("indel", {"type_mix": (0.2, 0.8), "length_dist": {1: 1.0, 5: 2.0, 16: 1.0}}),
                ("indel", {"length_dist": [0.1, 0.0, 0.9]}),
                ("mnv", {}),
                ("mnv", {"length_dist": {2: 1.0, 16: 1.0}, "edge_margin": 0}),
            ]:
                a, b = random.Random(seed * 31 + n), random.Random(seed * 31 + n)
                vo, vr = run_both(
                    lambda: getattr(synthetic_edits, name)(window, n, rng=a, **kwargs),
                    lambda: getattr(ref, name)(window, n, rng=b, **kwargs),
                )
                if isinstance(vo, list):
                    assert _same_edits(vo, vr)
                    assert a.getstate() == b.getstate()


@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("uniform_snv", {"edge_margin": -1}),
        ("uniform_snv", {"edge_margin": 50}),
        ("indel", {"type_mix": (0.0, 0.0)}),
        ("indel", {"type_mix": (-1.0, 2.0)}),
        ("indel", {"length_dist": {}}),
        ("indel", {"length_dist": {0: 1.0}}),
        ("indel", {"length_dist": {3: -1.0}}),
        ("indel", {"length_dist": [0.0, 0.0]}),
        ("mnv", {"length_dist": {17: 1.0}}),
    ],
)
def test_sampler_errors_match(name, kwargs):
    window = rand_seq(random.Random(0), 100)
    run_both(
        lambda: getattr(synthetic_edits, name)(window, 2, rng=random.Random(0), **kwargs),
        lambda: getattr(ref, name)(window, 2, rng=random.Random(0), **kwargs),
    )
