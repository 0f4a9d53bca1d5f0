"""Training preflight: schema and dataset issue codes against geno-lewm 0.2.1, plus our generalisations."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from geno_lewm_jax.config import Config, load_config
from geno_lewm_jax.errors import InputError, InvalidConfigError
from geno_lewm_jax.training.preflight import report as preflight_report
from geno_lewm_jax.training.preflight import (
    REPORT_NAME,
    REQUIRED_TRAINING_MODULES,
    AcceleratorProbe,
    DependencyProbe,
    TrainingPreflightRequest,
    build_training_preflight_report,
    run_training_preflight,
    write_training_preflight_report,
)
from geno_lewm_jax.training.preflight.runtime import DeviceView, decide_accelerator, probe_accelerator, probe_dependency

GIB = 1024**3
SNAPSHOT_ID = "genolewm-synth-v1"


# --- builders ----------------------------------------------------------------------------------
def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _dump(path: Path, payload: object) -> bytes:
    data = (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode()
    path.write_bytes(data)
    return data


def write_snapshot(root: Path, snapshot_id: str = SNAPSHOT_ID, *, extra_bytes: tuple[int, ...] = ()) -> Path:
    """A small snapshot in the release format that the reference preflight accepts.

    ``extra_bytes`` adds one listed training file of each size (the benchmark's big snapshots).
    """
    root.mkdir(parents=True)
    blobs = {
        "carbon/train-000.jsonl": (b'{"seq": "ACGT"}\n' * 3, "train"),
        "carbon/eval-000.jsonl": (b'{"seq": "TTGA"}\n' * 2, "eval"),
    }
    for index, size in enumerate(extra_bytes, start=1):
        blobs[f"carbon/train-{index:03d}.bin"] = (os.urandom(size), "train")
    files, inputs, staged = [], [], []
    for relative, (data, split) in blobs.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
        files.append({"path": relative, "split": split, "records": data.count(b"\n"), "sha256": _sha(data)})
        source = {"source_path": f"sources/{Path(relative).name}", "split": split, "description": f"{split} windows"}
        inputs.append({**source, "staged_path": relative, "sha256": _sha(data), "size_bytes": len(data)})
        staged.append({**source, "path": relative, "source_sha256": _sha(data), "source_size_bytes": len(data)})
    manifest = _dump(
        root / "dataset_manifest.json",
        {"snapshot_id": snapshot_id, "splits": {"train": {"chroms": ["chr1"]}, "eval": {"chroms": ["chr21"]}}, "files": files},
    )
    _dump(root / "dataset_package.json", {"generated_by": "tools.release.dataset_package", "snapshot_id": snapshot_id, "files": files})
    (root / "data_card.md").write_text("# synthetic snapshot\n")
    _dump(
        root / "split_integrity.json",
        {"snapshot_id": snapshot_id, "manifest_sha256": _sha(manifest), "leakage_checks": [{"name": "chrom", "status": "passed"}]},
    )
    check = _dump(
        root / "dataset_input_check_report.json",
        {
            "schema_version": "1.0.0",
            "generated_by": "tools.release.dataset_snapshot.check_inputs",
            "snapshot_id": snapshot_id,
            "inputs": inputs,
        },
    )
    _dump(
        root / "dataset_snapshot_report.json",
        {
            "schema_version": "1.0.0",
            "generated_by": "tools.release.dataset_snapshot",
            "snapshot_id": snapshot_id,
            "report_path": "dataset_snapshot_report.json",
            "metadata_path": "dataset_package.json",
            "input_check_path": "dataset_input_check_report.json",
            "input_check": {"path": "dataset_input_check_report.json", "sha256": _sha(check), "size_bytes": len(check)},
            "files": staged,
        },
    )
    write_sums(root)
    return root


def write_sums(root: Path) -> None:
    names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != "SHA256SUMS")
    lines = [f"{hashlib.sha256((root / n).read_bytes()).hexdigest()}  {n}" for n in names]
    (root / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def write_carbon(root: Path, *, hidden_size: object = 64, num_hidden_layers: object = 2, weight_bytes: int = 64) -> Path:
    """A Carbon-shaped model dir: enough for the preflight (the bridge checks the weights themselves)."""
    root.mkdir(parents=True)
    (root / "config.json").write_text(json.dumps({"hidden_size": hidden_size, "num_hidden_layers": num_hidden_layers}))
    (root / "tokenizer.json").write_text("{}")
    (root / "model.safetensors").write_bytes(b"\0" * weight_bytes)
    return root


def tiny_config(**overrides: object) -> Config:
    base = {"predictor.d_state": 64, "encoder.state_layer": 2, "runtime.device": "cpu"}
    return load_config(overrides={**base, **overrides})


def dep_ok(name: str, required: bool) -> DependencyProbe:
    return DependencyProbe(name, name.split(".")[0], required, True, None, "importable")


def acc_ok(device: str | None, required: bool, min_bytes: int) -> AcceleratorProbe:
    return AcceleratorProbe(device, required, True, 1, "stub", None, min_bytes, "stub")


def ours(tmp_path: Path, dataset: Path, config: Config | None = None, **kw: object):
    request = TrainingPreflightRequest(
        dataset_dir=dataset,
        carbon_model_dir=kw.pop("carbon", None) or write_carbon(tmp_path / "carbon"),
        run_dir=kw.pop("run_dir", tmp_path / "run"),
        config=config or tiny_config(),
        **kw,
    )
    return build_training_preflight_report(request, dependency_probe=dep_ok, accelerator_probe=acc_ok)


def reference(tmp_path: Path, dataset: Path, **kw: object):
    from geno_lewm.training import preflight as ref

    request = ref.TrainingPreflightRequest(
        dataset_dir=dataset,
        carbon_model_dir=kw.pop("carbon", tmp_path / "ref-carbon"),
        training_config=tmp_path / "ref-train.yaml",
        run_dir=tmp_path / "ref-run",
        **kw,
    )
    return ref.build_training_preflight_report(
        request,
        dependency_probe=lambda n, r: ref.DependencyProbe(n, n, r, True, None, "stub"),
        accelerator_probe=lambda d, r, m: ref.AcceleratorProbe(d, r, True, 1, "stub", None, m, "stub"),
    )


def dataset_codes(report) -> list[str]:
    return [issue.code for issue in report.issues if issue.code.startswith("dataset.")]


# --- corruptions for the parity test ---------------------------------------------------------------
def _edit_json(name: str, change):
    def apply(root: Path) -> None:
        payload = json.loads((root / name).read_text())
        change(payload)
        _dump(root / name, payload)

    return apply


def _flip_byte(root: Path) -> None:
    path = root / "carbon/train-000.jsonl"
    data = bytearray(path.read_bytes())
    data[3] ^= 0x01
    path.write_bytes(bytes(data))


def _write(name: str, text: str):
    return lambda root: (root / name).write_text(text)


def _append_sums(text: str):
    return lambda root: (root / "SHA256SUMS").write_text((root / "SHA256SUMS").read_text() + text)


def _then_resum(apply):
    def both(root: Path) -> None:
        apply(root)
        write_sums(root)

    return both


CORRUPTIONS = {
    "clean": lambda root: None,
    "no_data_card": lambda root: (root / "data_card.md").unlink(),
    "no_sha256sums": lambda root: (root / "SHA256SUMS").unlink(),
    "no_manifest": lambda root: (root / "dataset_manifest.json").unlink(),
    "no_package_and_reports": lambda root: [
        (root / n).unlink() for n in ("dataset_package.json", "split_integrity.json", "dataset_snapshot_report.json")
    ],
    "no_input_check": lambda root: (root / "dataset_input_check_report.json").unlink(),
    "flipped_byte": _flip_byte,
    "deleted_listed_file": lambda root: (root / "carbon/eval-000.jsonl").unlink(),
    "bad_sums_line": _append_sums("not-a-valid line here\n# a comment\n\n"),
    "sums_upper_hex": lambda root: (root / "SHA256SUMS").write_text(
        "".join(f"{d.upper()} {n}\n" for d, n in (line.split() for line in (root / "SHA256SUMS").read_text().splitlines()))
    ),
    "manifest_not_object": _write("dataset_manifest.json", "[1, 2, 3]\n"),
    "manifest_bad_json": _write("dataset_manifest.json", "{not json"),
    "package_bad_json": _write("dataset_package.json", "{"),
    "integrity_not_object": _write("split_integrity.json", '"text"'),
    "no_train_split": _edit_json("dataset_manifest.json", lambda m: m.update(splits={"eval": {}, "validation": {}})),
    "train_only_splits": _then_resum(_edit_json("dataset_manifest.json", lambda m: m.update(splits={"train": {}, "training_extra": {}}))),
    "splits_not_object": _edit_json("dataset_manifest.json", lambda m: m.update(splits=["train", "eval"])),
    "files_not_list": _edit_json("dataset_manifest.json", lambda m: m.update(files={"path": "x"})),
    "unsafe_paths": _edit_json(
        "dataset_manifest.json",
        lambda m: m["files"].extend([{"path": "../outside.txt"}, {"path": "/etc/hostname"}, "entry", {"path": "  "}, {}]),
    ),
    "manifest_hash_wrong": _then_resum(
        _edit_json("dataset_manifest.json", lambda m: m["files"][0].update(sha256="sha256:" + "0" * 64))
    ),
    "unlisted_in_sums": lambda root: (root / "SHA256SUMS").write_text(
        "".join(line + "\n" for line in (root / "SHA256SUMS").read_text().splitlines() if "eval-000" not in line)
    ),
    "package_generated_by": _then_resum(_edit_json("dataset_package.json", lambda p: p.update(generated_by="someone"))),
    "package_files_differ": _then_resum(_edit_json("dataset_package.json", lambda p: p["files"].pop())),
    "leakage_failed": _then_resum(
        _edit_json("split_integrity.json", lambda i: i["leakage_checks"].extend([{"status": "failed"}, "odd", {}]))
    ),
    "leakage_missing": _then_resum(_edit_json("split_integrity.json", lambda i: i.pop("leakage_checks"))),
    "integrity_snapshot_id": _then_resum(_edit_json("split_integrity.json", lambda i: i.update(snapshot_id="other"))),
    "input_check_meta": _edit_json(
        "dataset_input_check_report.json", lambda c: c.update(schema_version="2.0", generated_by="x", snapshot_id="y")
    ),
    "input_check_unsafe_input": _edit_json("dataset_input_check_report.json", lambda c: c["inputs"][0].update(source_path="/abs")),
    "input_check_bad_digest": _edit_json("dataset_input_check_report.json", lambda c: c["inputs"][1].update(sha256="sha256:xyz")),
    "input_check_empty": _edit_json("dataset_input_check_report.json", lambda c: c.update(inputs=[])),
    "input_check_stale": _edit_json("dataset_input_check_report.json", lambda c: c["inputs"].reverse()),
    "snapshot_report_meta": _edit_json(
        "dataset_snapshot_report.json",
        lambda s: s.update(schema_version="0", generated_by="x", report_path="r", metadata_path="m", input_check_path="i"),
    ),
    "snapshot_report_input_check_missing": _edit_json("dataset_snapshot_report.json", lambda s: s.update(input_check=None)),
    "snapshot_report_input_check_wrong": _edit_json(
        "dataset_snapshot_report.json", lambda s: s["input_check"].update(path="other.json", size_bytes=1)
    ),
    "snapshot_report_files_reordered": _edit_json("dataset_snapshot_report.json", lambda s: s["files"].reverse()),
    "snapshot_report_files_empty": _edit_json("dataset_snapshot_report.json", lambda s: s.update(files=[])),
    "snapshot_report_file_malformed": _edit_json("dataset_snapshot_report.json", lambda s: s["files"][0].update(source_size_bytes=True)),
    "smoke_snapshot_id": lambda root: None,  # id set below
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_dataset_issue_codes_match_reference(tmp_path, case):
    snapshot_id = "smoke-2026" if case == "smoke_snapshot_id" else SNAPSHOT_ID
    root = write_snapshot(tmp_path / "snapshot", snapshot_id)
    CORRUPTIONS[case](root)
    mine, theirs = ours(tmp_path, root), reference(tmp_path, root)
    assert dataset_codes(mine) == dataset_codes(theirs)
    assert (case in ("clean", "sums_upper_hex")) == (dataset_codes(mine) == [])  # upper-case hex is accepted
    assert mine.dataset_snapshot_id == theirs.dataset_snapshot_id
    mine_dict, theirs_dict = mine.to_dict()["dataset"], theirs.to_dict()["dataset"]
    assert mine_dict == json.loads(json.dumps(theirs_dict))  # same files, splits and core-file identities
    for issue in mine.issues:
        assert not Path(issue.path).is_absolute() and str(tmp_path) not in issue.message + issue.path


def test_missing_dataset_dir_matches_reference(tmp_path):
    assert dataset_codes(ours(tmp_path, tmp_path / "absent")) == dataset_codes(reference(tmp_path, tmp_path / "absent")) == [
        "dataset.dir_missing"
    ]


def test_fixture_heuristic_matches_words_not_substrings(tmp_path):
    root = write_snapshot(tmp_path / "snapshot", "latest-attestation-2026")
    assert dataset_codes(reference(tmp_path, root)) == ["dataset.fixture_snapshot"]  # the reference's false positive
    assert dataset_codes(ours(tmp_path, root)) == []
    fixture = write_snapshot(tmp_path / "fixture", "unit_test.v2")
    assert dataset_codes(ours(tmp_path / "a", fixture)) == ["dataset.fixture_snapshot"]
    assert dataset_codes(ours(tmp_path / "b", fixture, allow_fixture_dataset=True)) == []


# --- the clean path --------------------------------------------------------------------------------
def _project_snapshot(root: Path) -> Path:
    """The data layer's synthetic snapshot when it is available, else this module's minimal one."""
    try:
        from geno_lewm_jax.data import make_synthetic_snapshot
    except ImportError:
        return write_snapshot(root)
    make_synthetic_snapshot(root, seed=0)
    return root


def test_synthetic_snapshot_and_standin_pass_on_cpu_with_default_probes(tmp_path):
    import bridge

    root = _project_snapshot(tmp_path / "snapshot")
    carbon = bridge.write_standin(tmp_path / "carbon", seed=0)
    request = TrainingPreflightRequest(root, carbon, tmp_path / "run", tiny_config(), allow_fixture_dataset=True)
    report = build_training_preflight_report(request)
    assert report.ok and report.issues == (), [issue.one_line() for issue in report.issues]
    assert report.accelerator.available and report.accelerator.platform == "cpu"
    assert [probe.import_name for probe in report.dependencies] == list(REQUIRED_TRAINING_MODULES)
    assert all(probe.available for probe in report.dependencies)
    assert report.carbon["hidden_size"] == 64 and report.carbon["num_hidden_layers"] == 2
    assert report.dataset_snapshot_id is not None
    assert not (tmp_path / "run").exists()  # building never creates the run dir
    theirs = reference(tmp_path, root, carbon=carbon, allow_fixture_dataset=True)
    assert [i.code for i in theirs.issues if i.code.startswith(("dataset.", "carbon."))] == []


# --- config against the Carbon model ----------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides, layers, codes",
    [
        ({"predictor.d_state": 128}, 2, ["training_config.predictor.d_state_mismatch"]),
        ({"encoder.state_layer": 3}, 2, ["training_config.encoder.state_layer_out_of_range"]),
        ({"encoder.state_layer": -4}, 2, ["training_config.encoder.state_layer_out_of_range"]),
        ({"encoder.state_layer": -3}, 2, []),
        ({"encoder.state_layer": 0}, 2, []),
        ({"encoder.state_layer": 20}, 24, []),
        (
            {"predictor.d_state": 1024, "encoder.state_layer": 20},
            2,
            ["training_config.predictor.d_state_mismatch", "training_config.encoder.state_layer_out_of_range"],
        ),
    ],
)
def test_config_is_checked_against_carbon_shape(tmp_path, overrides, layers, codes):
    carbon = write_carbon(tmp_path / "carbon", num_hidden_layers=layers)
    report = ours(tmp_path, write_snapshot(tmp_path / "s"), tiny_config(**overrides), carbon=carbon)
    assert [issue.code for issue in report.issues] == codes
    assert report.ok == (codes == [])
    assert all(issue.severity == "error" for issue in report.issues)
    assert {issue.path for issue in report.issues} <= {"predictor.d_state", "encoder.state_layer"}


@pytest.mark.parametrize(
    "content", ['{"hidden_size": 64}', '{"hidden_size": true, "num_hidden_layers": 2}', "[64]", "{oops", b"\xff\xfe"]
)
def test_unreadable_carbon_config_is_reported(tmp_path, content):
    carbon = write_carbon(tmp_path / "carbon")
    path = carbon / "config.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    report = ours(tmp_path, write_snapshot(tmp_path / "s"), carbon=carbon)
    assert [issue.code for issue in report.issues] == ["carbon.config_invalid"]
    assert report.issues[0].path == "carbon/config.json"


def test_carbon_dir_codes_match_reference(tmp_path):
    from geno_lewm.training import preflight as ref

    empty = tmp_path / "carbon"
    empty.mkdir()
    snapshot = write_snapshot(tmp_path / "s")
    mine = ours(tmp_path, snapshot, carbon=empty)
    theirs = ref.build_training_preflight_report(
        ref.TrainingPreflightRequest(snapshot, empty, tmp_path / "t.yaml", tmp_path / "ref-run"),
        dependency_probe=lambda n, r: ref.DependencyProbe(n, n, r, True, None, ""),
        accelerator_probe=lambda d, r, m: ref.AcceleratorProbe(d, r, True, 0, None, None, m, ""),
    )
    codes = ["carbon.config_missing", "carbon.tokenizer_missing", "carbon.weights_missing"]
    assert [i.code for i in mine.issues if i.code.startswith("carbon.")] == codes
    assert [i.code for i in theirs.issues if i.code.startswith("carbon.")] == codes
    missing = ours(tmp_path / "x", snapshot, carbon=tmp_path / "nowhere")
    assert [i.code for i in missing.issues] == ["carbon.dir_missing"]


def test_weights_are_hashed_once_or_identified_by_stat(tmp_path, monkeypatch):
    seen: list[str] = []
    real = preflight_report.hashlib.file_digest

    def counting(handle, name):
        seen.append(handle.name)
        return real(handle, name)

    monkeypatch.setattr(preflight_report.hashlib, "file_digest", counting)
    snapshot = write_snapshot(tmp_path / "s")
    report = ours(tmp_path, snapshot)
    assert len(seen) == len(set(seen))  # every file read at most once (the manifest is used 3 times)
    weights = report.carbon["artifacts"]["weights"]
    assert weights["sha256"] == _sha(b"\0" * 64)
    seen.clear()
    fast = ours(tmp_path / "b", snapshot, weights_identity="stat")
    assert fast.carbon["artifacts"]["weights"]["sha256"] is None
    assert fast.carbon["artifacts"]["weights"]["size_bytes"] == 64 and "mtime_ns" in fast.carbon["artifacts"]["weights"]
    assert not any(name.endswith("model.safetensors") for name in seen)


# --- config file and horizon -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, text, codes",
    [
        ("absent.yaml", None, ["training_config.missing"]),
        ("bad.yaml", "a: [1,\n", ["training_config.invalid_yaml"]),
        ("list.yaml", "- 1\n- 2\n", ["training_config.invalid"]),
        (
            "unknown.yaml",
            "encoder: {}\ndata: {}\npredictor: {}\naction: {}\ntraining: {}\noptimizer: {}\nbogus: 1\n",
            ["training_config.schema_invalid"],
        ),
        (
            "partial.yaml",
            "predictor:\n  d_state: 64\ntraining:\n  max_steps: 5000\n",
            [f"training_config.{k}.missing" for k in ("encoder", "data", "action", "optimizer")],
        ),
        ("run.flags", "--d_state=64\n", []),
        ("bad.flags", "--d_state=abc\n", ["training_config.schema_invalid"]),
    ],
)
def test_config_file_checks(tmp_path, name, text, codes):
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    report = ours(tmp_path, write_snapshot(tmp_path / "s"), config_path=path)
    assert [issue.code for issue in report.issues] == codes
    assert report.ok == all(code.endswith(".missing") and code != "training_config.missing" for code in codes)
    section = report.training_config
    assert section["path"] == name and section["resolved"]["predictor"]["d_state"] == 64
    if text is not None:
        assert section["sha256"] == _sha(text.encode()) and section["size_bytes"] == len(text.encode())


def _hand_built(training: dict, optimizer: dict | None = None) -> Config:
    base = tiny_config()
    return dataclasses.replace(
        base,
        training=dataclasses.replace(base.training, **training),
        optimizer=dataclasses.replace(base.optimizer, **(optimizer or {})),
    )


@pytest.mark.parametrize(
    "training, optimizer, codes",
    [
        ({"max_steps": 0}, None, ["training_config.training.max_steps_invalid"]),
        ({"max_steps": True}, None, ["training_config.training.max_steps_invalid"]),
        ({"max_steps": 100, "collapse_log_every_steps": -1}, {"warmup_steps": 10}, ["training_config.training.collapse_log_every_steps_invalid"]),
        ({"max_steps": 100}, {"warmup_steps": 100}, ["training_config.training.max_steps_wsd_warmup"]),
        ({"max_steps": 100}, {"warmup_steps": 100, "schedule": "cosine"}, []),
        ({"max_steps": 100, "keep_checkpoints": 0}, {"warmup_steps": 10}, ["training_config.schema_invalid"]),
        ({"max_steps": 100}, {"warmup_steps": 10, "lr": float("nan")}, ["training_config.schema_invalid"]),
    ],
)
def test_horizon_and_schema_checks_on_hand_built_configs(tmp_path, training, optimizer, codes):
    report = ours(tmp_path, write_snapshot(tmp_path / "s"), _hand_built(training, optimizer))
    assert [issue.code for issue in report.issues] == codes
    assert report.ok == (codes == [])


# --- accelerator -----------------------------------------------------------------------------------
def test_cuda_on_this_cpu_machine_gives_the_reference_code(tmp_path):
    from geno_lewm.training import preflight as ref

    theirs = ref._probe_accelerator("cuda", True, 40 * GIB)
    mine = probe_accelerator("cuda", True, 40 * GIB)
    assert not mine.available and mine.issue_code == theirs.issue_code == "training.cuda.unavailable"
    assert mine.platform == "cpu" and mine.torch_cuda_available is False
    request = TrainingPreflightRequest(
        write_snapshot(tmp_path / "s"), write_carbon(tmp_path / "c"), tmp_path / "run", tiny_config(**{"runtime.device": "cuda"})
    )
    report = build_training_preflight_report(request, dependency_probe=dep_ok)
    assert [(i.code, i.path) for i in report.issues] == [("training.cuda.unavailable", "runtime.device")]
    relaxed = dataclasses.replace(request, require_accelerator=False)
    assert build_training_preflight_report(relaxed, dependency_probe=dep_ok).ok


CPU = DeviceView("cpu", 8, "cpu", None)
H100 = DeviceView("gpu", 1, "NVIDIA H100", 60 * GIB)


@pytest.mark.parametrize(
    "device, jax_seen, torch_seen, available, code",
    [
        ("cpu", CPU, None, True, None),
        ("auto", CPU, None, True, None),
        ("auto", DeviceView("tpu", 4, "TPU v5", 16 * GIB), None, True, None),
        ("cuda", H100, DeviceView("gpu", 1, "NVIDIA H100", 80 * GIB), True, None),
        ("cuda", DeviceView("gpu", 1, "T4", 15 * GIB), None, False, "training.cuda.vram_too_low"),
        ("cuda", DeviceView("gpu", 1, "?", None), None, False, "training.cuda.memory_unknown"),
        ("cuda", DeviceView("gpu", 1, "?", None), DeviceView("gpu", 1, "A100", 80 * GIB), True, None),
        ("cuda", CPU, DeviceView("gpu", 2, "A100", 80 * GIB), True, None),
        ("cuda", CPU, DeviceView("cpu", 0, None, None), False, "training.cuda.unavailable"),
        ("cuda", CPU, None, False, "training.cuda.torch_unavailable"),
        ("cuda", DeviceView("tpu", 4, "TPU v5", 16 * GIB), DeviceView("cpu", 0, None, None), False, "training.cuda.unavailable"),
        ("mps", CPU, None, False, "training_config.runtime.device_unsupported"),
        (None, CPU, None, False, "training_config.runtime.device_unsupported"),
    ],
)
def test_accelerator_decision(device, jax_seen, torch_seen, available, code):
    probe = decide_accelerator(device, True, 40 * GIB, jax_seen=jax_seen, torch_seen=torch_seen)
    assert (probe.available, probe.issue_code) == (available, code)
    assert probe.min_memory_bytes == 40 * GIB and probe.requested_device == device


@pytest.mark.parametrize(
    "jax_seen, torch_seen, warning",
    [
        (CPU, DeviceView("gpu", 1, "A100", 80 * GIB), "training.cuda.jax_no_gpu"),
        (H100, DeviceView("cpu", 0, None, None), "training.cuda.torch_no_gpu"),
        (H100, DeviceView("gpu", 1, "H100", 80 * GIB), None),
    ],
)
def test_cuda_seen_by_one_framework_only_warns(tmp_path, jax_seen, torch_seen, warning):
    def probe(device, required, min_bytes):
        return decide_accelerator(device, required, min_bytes, jax_seen=jax_seen, torch_seen=torch_seen)

    request = TrainingPreflightRequest(
        write_snapshot(tmp_path / "s"), write_carbon(tmp_path / "c"), tmp_path / "run", tiny_config(**{"runtime.device": "cuda"})
    )
    report = build_training_preflight_report(request, dependency_probe=dep_ok, accelerator_probe=probe)
    assert report.ok
    assert [(i.severity, i.code) for i in report.issues] == ([("warning", warning)] if warning else [])


def test_min_memory_is_gib_and_zero_means_no_minimum(tmp_path):
    seen = {}

    def probe(device, required, min_bytes):
        seen["min"] = min_bytes
        return acc_ok(device, required, min_bytes)

    for gb, expected in ((40.0, 40 * GIB), (0.5, GIB // 2), (0, 0)):
        request = TrainingPreflightRequest(tmp_path / "s", tmp_path / "c", tmp_path / "r", tiny_config(), min_accelerator_memory_gb=gb)
        build_training_preflight_report(request, dependency_probe=dep_ok, accelerator_probe=probe)
        assert seen["min"] == expected


# --- dependencies ------------------------------------------------------------------------------------
def test_dependency_probe_and_issue(tmp_path):
    assert probe_dependency("yaml", True).version is not None  # found through its distribution, PyYAML
    absent = probe_dependency("no_such_module_for_preflight.sub", True)
    assert (absent.available, absent.package, absent.version) == (False, "no_such_module_for_preflight", None)

    def probe(name, required):
        return probe_dependency("no_such_module_for_preflight", required) if name == "optax" else dep_ok(name, required)

    request = TrainingPreflightRequest(write_snapshot(tmp_path / "s"), write_carbon(tmp_path / "c"), tmp_path / "r", tiny_config())
    report = build_training_preflight_report(request, dependency_probe=probe, accelerator_probe=acc_ok)
    assert [(i.code, i.path) for i in report.issues] == [("training.dependency_unavailable", "no_such_module_for_preflight")]
    lenient = dataclasses.replace(request, require_native_runtime=False)
    assert build_training_preflight_report(lenient, dependency_probe=probe, accelerator_probe=acc_ok).ok


# --- the written report ---------------------------------------------------------------------------------
def _keys(report: dict) -> dict[str, set]:
    return {
        "top": set(report),
        "dataset": set(report["dataset"]),
        "carbon": set(report["carbon"]),
        "artifacts": set(report["carbon"]["artifacts"]),
        "training_config": set(report["training_config"]),
        "run_dir": set(report["run_dir"]),
        "accelerator": set(report["accelerator"]),
        "dependency": set(report["dependencies"][0]),
        "issue": set(report["issues"][0]) if report["issues"] else set(),
    }


def test_written_report_is_strict_sorted_json_with_the_reference_keys(tmp_path):
    snapshot = write_snapshot(tmp_path / "snapshot")
    (snapshot / "data_card.md").unlink()
    config = _hand_built({"max_steps": 100}, {"warmup_steps": 10, "lr": float("nan")})
    request = TrainingPreflightRequest(snapshot, write_carbon(tmp_path / "carbon"), tmp_path / "run", config)
    report = write_training_preflight_report(request, generated_at="2026-06-02T00:00:00Z", dependency_probe=dep_ok, accelerator_probe=acc_ok)
    text = (tmp_path / "run" / REPORT_NAME).read_text()

    def no_constants(token):
        raise AssertionError(f"non-strict JSON token {token}")

    payload = json.loads(text, parse_constant=no_constants)
    assert text == json.dumps(payload, indent=2, sort_keys=True) + "\n"
    assert payload == json.loads(json.dumps(report.to_dict()).replace("NaN", "null"))
    assert payload["training_config"]["resolved"]["optimizer"]["lr"] is None
    assert payload["ok"] is False and payload["generated_at"] == "2026-06-02T00:00:00Z"
    assert payload["schema_version"] == "1.0.0" and payload["generated_by"] == "geno_lewm_jax.training.preflight"
    assert str(tmp_path) not in text

    theirs = reference(tmp_path, snapshot, carbon=tmp_path / "carbon").to_dict()
    mine, ref_keys = _keys(payload), _keys(theirs)
    for part in ("top", "dataset", "artifacts", "dependency", "issue"):
        assert mine[part] == ref_keys[part], part
    for part, extra in (
        ("carbon", {"hidden_size", "num_hidden_layers"}),
        ("accelerator", {"platform", "torch_cuda_available"}),
        ("run_dir", {"writable"}),
        ("training_config", set()),
    ):
        assert mine[part] == ref_keys[part] | extra, part


def test_generated_at_defaults_to_utc_seconds(tmp_path):
    report = ours(tmp_path, write_snapshot(tmp_path / "s"))
    assert len(report.generated_at) == 20 and report.generated_at.endswith("Z") and report.generated_at[10] == "T"


# --- run dir -------------------------------------------------------------------------------------------
def test_unwritable_run_dir_is_reported_not_raised(tmp_path):
    blocker = tmp_path / "plain-file"
    blocker.write_text("not a directory")
    run_dir = blocker / "runs" / "r1"
    report = ours(tmp_path, write_snapshot(tmp_path / "s"), run_dir=run_dir)
    assert [(i.code, i.path) for i in report.issues] == [("run_dir.not_writable", "r1")]
    assert report.run_dir == {"path": "r1", "exists": False, "writable": False, "preflight_report_path": REPORT_NAME}
    assert blocker.read_text() == "not a directory"
    request = TrainingPreflightRequest(tmp_path / "s", tmp_path / "carbon", run_dir, tiny_config())
    with pytest.raises(InputError) as err:
        write_training_preflight_report(request, dependency_probe=dep_ok, accelerator_probe=acc_ok)
    assert err.value.details["field"] == "output"


def test_run_dir_probe_changes_nothing(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "old.json").write_text("{}")
    os.utime(run_dir / "old.json", ns=(1, 1))
    before = sorted((p.name, p.stat().st_mtime_ns) for p in run_dir.iterdir())
    report = ours(tmp_path, write_snapshot(tmp_path / "s"), run_dir=run_dir)
    assert report.ok and report.run_dir["exists"] and report.run_dir["writable"]
    assert sorted((p.name, p.stat().st_mtime_ns) for p in run_dir.iterdir()) == before


# --- the main job's gate ----------------------------------------------------------------------------------
def _job_config(tmp_path: Path, **overrides: object) -> Config:
    return tiny_config(
        **{
            "data.dataset_dir": str(write_snapshot(tmp_path / "snapshot")),
            "encoder.model_dir": str(write_carbon(tmp_path / "carbon")),
            "runtime.run_dir": str(tmp_path / "run"),
            **overrides,
        }
    )


def test_run_training_preflight_prints_one_line_per_issue_and_stops(tmp_path):
    config = _job_config(tmp_path, **{"predictor.d_state": 32})
    (tmp_path / "snapshot" / "data_card.md").unlink()
    out = io.StringIO()
    with pytest.raises(InputError) as err:
        run_training_preflight(config, stream=out, dependency_probe=dep_ok, accelerator_probe=acc_ok)
    lines = out.getvalue().splitlines()
    assert lines == [
        "preflight error[dataset.data_card.md.missing] snapshot/data_card.md: the snapshot has no data_card.md",
        "preflight error[training_config.predictor.d_state_mismatch] predictor.d_state: "
        "predictor.d_state=32 but the Carbon model's hidden_size is 64",
    ]
    assert err.value.details["codes"] == ["dataset.data_card.md.missing", "training_config.predictor.d_state_mismatch"]
    assert not (tmp_path / "run" / REPORT_NAME).exists()  # a failed gate leaves the run dir untouched


def test_run_training_preflight_passes_quietly(tmp_path):
    out = io.StringIO()
    report = run_training_preflight(_job_config(tmp_path), stream=out, dependency_probe=dep_ok, accelerator_probe=acc_ok)
    assert report.ok and out.getvalue() == ""
    assert json.loads((tmp_path / "run" / REPORT_NAME).read_text())["ok"] is True


def test_multiline_messages_print_on_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("a: [1,\n")
    report = ours(tmp_path, write_snapshot(tmp_path / "s"), config_path=path)
    assert "\n" in report.issues[0].message and "\n" not in report.issues[0].one_line()


# --- request validation and import hygiene ------------------------------------------------------------------
@pytest.mark.parametrize(
    "field, value",
    [
        ("dataset_dir", 3),
        ("run_dir", ""),
        ("config", {"predictor": {}}),
        ("config_path", 1.5),
        ("allow_fixture_dataset", "yes"),
        ("min_accelerator_memory_gb", -1),
        ("min_accelerator_memory_gb", True),
        ("min_accelerator_memory_gb", float("inf")),
        ("weights_identity", "md5"),
    ],
)
def test_bad_request_fields_raise_naming_the_field(tmp_path, field, value):
    fields = {"dataset_dir": tmp_path, "carbon_model_dir": tmp_path, "run_dir": tmp_path, "config": tiny_config(), field: value}
    with pytest.raises(InputError) as err:
        TrainingPreflightRequest(**fields)
    assert err.value.details["field"] == field and field in err.value.message


def test_request_from_config_names_an_empty_directory_field(tmp_path):
    request = TrainingPreflightRequest.from_config(_job_config(tmp_path), config_path=str(tmp_path / "x.yaml"))
    assert request.run_dir == tmp_path / "run" and request.config_path == tmp_path / "x.yaml"
    with pytest.raises(InvalidConfigError) as err:
        TrainingPreflightRequest.from_config(tiny_config())
    assert err.value.details["field"] == "data.dataset_dir"


def test_import_does_not_pull_in_torch():
    code = "import sys, geno_lewm_jax.training.preflight; assert 'torch' not in sys.modules, 'torch imported'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
