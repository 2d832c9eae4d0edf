"""Bad input ends in one line naming the file and the problem, never a traceback: damaged
kdcg files, files that are not kdcg's, trajectories whose species do not fit."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from conftest import REPO, SMALL_TRAINING_CONFIG, kdcg, write_pair_dataset
from kdcg.analysis import distributions as analysis
from kdcg.training import labels
from kdcg.models import model_io
from kdcg.training import train as training
from kdcg.errors import InputError
from kdcg.cg.mapping import load_dataset
from kdcg.models.prior import read_prior, write_prior


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad_input")
    write_pair_dataset(d / "dataset.npz")
    write_prior(d / "dataset.npz", SMALL_TRAINING_CONFIG, d / "prior.json")
    training.train("teacher", 1, d / "dataset.npz", d / "prior.json", d / "teacher-1", SMALL_TRAINING_CONFIG)
    (d / "train.yaml").write_text(yaml.safe_dump(SMALL_TRAINING_CONFIG))
    return d


def _last_line(proc) -> str:
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc.stderr.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def not_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("not_models")
    (d / "random.pt").write_bytes(np.random.default_rng(0).bytes(2000))
    torch.save({"weights": torch.zeros(3)}, d / "dict.pt")
    torch.save(torch.zeros(3), d / "tensor.pt")
    return d


def test_a_pt_file_that_is_not_a_kdcg_model_is_named(made, not_models, tmp_path):
    for name in ("random.pt", "dict.pt", "tensor.pt"):
        with pytest.raises(InputError, match=rf"{name}: (not a kdcg model file|model cannot be read)"):
            model_io.load_model(not_models / name)
    # each command that takes a model says so in one line, and writes nothing
    cfg = yaml.safe_load((REPO / "tests/config/tiny.yaml").read_text())
    (tmp_path / "md.yaml").write_text(yaml.safe_dump({"system": cfg["system"], "md": cfg["md"]}))
    out = tmp_path / "out"
    for bad, args in [
        ("random.pt", ("label", "--model", "{bad}", "--dataset", made / "dataset.npz", "--out", out / "l.npz")),
        ("dict.pt", ("ensemble", "--out", out / "e.pt", made / "teacher-1" / "model.pt", "{bad}")),
        ("tensor.pt", ("export-mliap", "--model", "{bad}", "--out", out / "m.pt")),
        ("dict.pt", ("md", "--model", "{bad}", "--dataset", made / "dataset.npz", "--config", tmp_path / "md.yaml",
                     "--out-dir", out / "md")),
    ]:
        bad = not_models / bad
        last = _last_line(kdcg(*[bad if a == "{bad}" else a for a in args], cwd=REPO, check=False))
        assert last.startswith(f"kdcg error: {bad}: ") and ("not a kdcg model file" in last or "cannot be read" in last), last
    assert not out.exists() or not any(out.rglob("*.*"))


def _cut(src, dest):
    raw = src.read_bytes()
    dest.write_bytes(raw[: len(raw) // 2])
    return dest


def test_truncated_kdcg_files_are_named_by_their_readers(made, tmp_path):
    cut = _cut(made / "dataset.npz", tmp_path / "dataset.npz")
    msg = f"{cut}: dataset cannot be read (truncated, or not an NPZ file)"
    for call in (lambda: write_prior(cut, SMALL_TRAINING_CONFIG, tmp_path / "p.json"),
                 lambda: labels.label_frames(made / "teacher-1" / "model.pt", cut, tmp_path / "l.npz"),
                 lambda: analysis.analyze_dataset(cut, {}, tmp_path / "a.json")):
        with pytest.raises(InputError) as err:
            call()
        assert str(err.value).startswith(msg)
    last = _last_line(kdcg("train", "teacher", "--seed", "1", "--config", made / "train.yaml", "--dataset", cut,
                           "--prior", made / "prior.json", "--out-dir", tmp_path / "t", check=False))
    assert last.startswith(f"kdcg error: {msg}: BadZipFile"), last
    data = load_dataset(made / "dataset.npz")
    labels.label_frames(made / "teacher-1" / "model.pt", made / "dataset.npz", tmp_path / "labels.npz")
    with pytest.raises(InputError, match=r"cut-labels.npz: labels cannot be read \(truncated, or not an NPZ file\)"):
        labels.load_labels(_cut(tmp_path / "labels.npz", tmp_path / "cut-labels.npz"), data)
    with pytest.raises(InputError, match=r"cut-prior.json: prior \(kdcg prior writes it\) is not valid JSON \(truncated\?\)"):
        read_prior(_cut(made / "prior.json", tmp_path / "cut-prior.json"), data)
    with pytest.raises(InputError, match=r"cut-model.pt: model cannot be read \(truncated, or not a PyTorch file\)"):
        model_io.load_model(_cut(made / "teacher-1" / "model.pt", tmp_path / "cut-model.pt"))
    thermo = tmp_path / "thermo.csv"
    thermo.write_text("step,time_ps,potential_kcal_mol\n0,0.0,-1.5\n25,0.05,-1.")
    thermo.write_text(thermo.read_text()[:-3])
    with pytest.raises(InputError, match=r"thermo.csv: a row is not numbers \(truncated\?\)"):
        analysis.read_thermo(thermo)


# --------------------------------------------------------------------------- kdcg analyze --trajectory


def _dump(path, n_frames=4, n=9, cut=0):
    rng = np.random.default_rng(1)
    text = ""
    for k in range(n_frames):
        text += (f"ITEM: TIMESTEP\n{k * 10}\nITEM: NUMBER OF ATOMS\n{n}\nITEM: BOX BOUNDS pp pp pp\n0 16\n0 16\n0 16\n"
                 "ITEM: ATOMS id type x y z\n")
        text += "".join(f"{i + 1} {i % 3 + 1} {' '.join(f'{v:.3f}' for v in rng.uniform(0, 16, 3))}\n" for i in range(n))
    path.write_text(text[: len(text) - cut])
    return path


@pytest.fixture(scope="module")
def reference(made, tmp_path_factory):
    d = tmp_path_factory.mktemp("reference")
    acfg = dict(yaml.safe_load((REPO / "tests/config/tiny.yaml").read_text())["analysis"])
    acfg["adf_triplets"] = [["A", "A", "A"]]
    (d / "a.yaml").write_text(yaml.safe_dump({"analysis": acfg}))
    analysis.analyze_dataset(made / "dataset.npz", acfg, d / "reference.json")
    return d


@pytest.mark.parametrize("species, problem", [
    (["B", "A", "C"], "species names ['B', 'A', 'C'] are in another order than the reference {ref}'s ['A', 'B', 'C']"),
    (["A", "B", "C", "D"], "4 species names ['A', 'B', 'C', 'D'] but its atoms have types 1..3 only"),
    ([], "atom type 3 but only 0 species names"),
    (None, "species names ['1', '2', '3'] are different than the reference {ref}'s ['A', 'B', 'C']"),
])
def test_trajectory_species_that_do_not_fit_are_one_line(reference, tmp_path, species, problem):
    traj = _dump(tmp_path / "t.lammpstrj")
    args = ["analyze", "--config", reference / "a.yaml", "--trajectory", traj, "--reference", reference / "reference.json",
            "--timestep-fs", "2", "--out", tmp_path / "o.json"]
    if species is not None:
        args += ["--species", *species]
    last = _last_line(kdcg(*args, check=False))
    assert last.startswith(f"kdcg error: {traj}: " + problem.format(ref=reference / "reference.json")), last


def test_no_species_names_and_no_reference_name_the_adf_triplet(reference, tmp_path):
    traj = _dump(tmp_path / "t.lammpstrj")
    last = _last_line(kdcg("analyze", "--config", reference / "a.yaml", "--trajectory", traj, "--out", tmp_path / "o.json",
                           check=False))
    assert last == (f"kdcg error: {traj}: its species are ['1', '2', '3'], but the ADF triplet ['A', 'A', 'A'] of the "
                    "config names ['A']: pass --species with the names in type order")


def test_an_empty_dump_is_one_line_and_a_cut_one_says_what_it_dropped(reference, tmp_path):
    (tmp_path / "empty.lammpstrj").write_text("")
    last = _last_line(kdcg("analyze", "--config", reference / "a.yaml", "--trajectory", tmp_path / "empty.lammpstrj",
                           "--species", "A", "B", "C", "--out", tmp_path / "o.json", check=False))
    assert last == f"kdcg error: {tmp_path / 'empty.lammpstrj'}: empty file: the trajectory has no frames"
    cut = _dump(tmp_path / "cut.lammpstrj", cut=40)
    proc = kdcg("analyze", "--config", reference / "a.yaml", "--trajectory", cut, "--species", "A", "B", "C",
                "--reference", reference / "reference.json", "--timestep-fs", "2", "--out", tmp_path / "o.json")
    assert f"{cut}: its last 1 frame(s) are incomplete (cut mid-write?) and were left out; 3 frames used" in proc.stderr
    out = json.loads((tmp_path / "o.json").read_text())
    assert out["n_frames"] == 3 and out["frames_dropped"] == 1 and set(out["tae"]) == {"rdf", "adf", "cdf"}
    # an equilibration dropped outside the workflow: of the frames at 0, 0.01, 0.02, 0.03 ps, the last two
    full = _dump(tmp_path / "full.lammpstrj")
    kdcg("analyze", "--config", reference / "a.yaml", "--trajectory", full, "--species", "A", "B", "C",
         "--timestep-fs", "1", "--start-ps", "0.02", "--out", tmp_path / "late.json")
    late = json.loads((tmp_path / "late.json").read_text())
    assert late["n_frames"] == 2 and late["first_frame_used"] == 2 and late["t_start_ps"] == pytest.approx(0.02)
    assert late["cdf_windows"]["windows"][0]["t_start_ps"] == 0.0


def test_a_replica_of_another_dataset_is_refused_by_the_reference(made, reference, tmp_path):
    from kdcg.provenance import comparable, dataset_fingerprint

    write_pair_dataset(tmp_path / "other.npz", seed=3)
    replica = tmp_path / "replica-1"
    replica.mkdir()
    for fingerprint, problem in ((comparable(dataset_fingerprint(load_dataset(tmp_path / "other.npz"))),
                                  "replica made from another dataset (content sha256"),
                                 (None, "replica carries no dataset fingerprint (made by an older kdcg?)")):
        (replica / "result.json").write_text(json.dumps(_result(dataset=fingerprint)))
        with pytest.raises(InputError) as err:
            analysis.analyze_replica(replica, reference / "reference.json", {"analysis": {}})
        msg = str(err.value)
        assert msg.startswith(f"{replica / 'result.json'}: {problem}") and str(reference / "reference.json") in msg, msg
    # the replica of the reference's own dataset passes the check (and fails later, for want of a trajectory)
    (replica / "result.json").write_text(json.dumps(_result(dataset=comparable(dataset_fingerprint(load_dataset(made / "dataset.npz"))))))
    with pytest.raises(InputError, match="thermo file not found"):
        analysis.analyze_replica(replica, reference / "reference.json", yaml.safe_load((reference / "a.yaml").read_text()))


def _result(**fields) -> dict:
    """A replica's result.json as kdcg.md.replicas writes it (the fields the analyses read)."""
    return {"model": "teacher-1", "replica": 1, "status": "stable", "reason": None, "step": 100,
            "species_names": ["A", "B", "C"], "timestep_fs": 1.0, "total_steps": 100, "equilibration_ps": 0.05,
            "sample_interval_ps": 0.01, **fields}


@pytest.mark.parametrize("lacking", ["total_steps", "species_names"])
def test_a_replica_result_lacking_a_field_is_one_line_naming_it(made, reference, tmp_path, lacking):
    from kdcg.provenance import comparable, dataset_fingerprint

    replica = tmp_path / "replica-1"
    replica.mkdir()
    record = _result(dataset=comparable(dataset_fingerprint(load_dataset(made / "dataset.npz"))))
    del record[lacking]
    (replica / "result.json").write_text(json.dumps(record))
    line = _last_line(kdcg("analyze", "--config", reference / "a.yaml", "--replica-dirs", replica,
                           "--reference", reference / "reference.json", check=False))
    assert line == f"kdcg error: {replica / 'result.json'}: replica result lacks '{lacking}' (written by another kdcg," \
                   " or edited by hand? rerun the job that writes it)", line


@pytest.mark.parametrize("content, problem", [(b"\x80\x81\x00\xff binary", "not a text file (byte 0 is not UTF-8)"),
                                              (b"md: {replicas: 2}\n# caf\xe9\n", "not a text file (byte 23 is not UTF-8)")])
def test_a_config_that_is_not_utf8_text_is_one_line_naming_it(tmp_path, content, problem):
    (tmp_path / "some.yaml").write_bytes(content)
    line = _last_line(kdcg("check-config", tmp_path / "some.yaml", check=False))
    assert line.startswith(f"kdcg error: {tmp_path / 'some.yaml'}: {problem}"), line
