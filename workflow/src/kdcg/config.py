"""Load and strictly validate a kdcg config (its JSON schema: config.schema.yaml beside this module)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from kdcg.errors import InputError

def load_schema() -> dict:
    """The config's JSON schema (package data; workflow/schemas/config.schema.yaml links to it)."""
    from importlib.resources import files

    return yaml.safe_load(files("kdcg").joinpath("config.schema.yaml").read_text())


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<top level>"


def describe(error: jsonschema.ValidationError) -> str:
    """One line that names the offending key."""
    where = _key_path(error)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        inside = "" if where == "<top level>" else f" in '{where}'"
        return f"unknown config key {', '.join(repr(k) for k in extra)}{inside} (allowed: {', '.join(allowed)})"
    if error.validator == "required":
        return f"config key '{where}' is missing a required entry: {error.message}"
    return f"config key '{where}': {error.message}"


def validate(config: dict[str, Any], source: str | Path = "config", partial: bool = False) -> dict[str, Any]:
    """Raise InputError naming the first bad key (errors sorted by key path).

    ``partial``: a stage's snapshot holds only the top-level sections that stage reads;
    those present are checked in full, absent ones are not required.
    """
    schema = load_schema()
    if partial:
        schema["required"] = [k for k in schema["required"] if k in config]
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), _key_path(e)))
    if errors:
        raise InputError(source, describe(errors[0]))
    check_physics(config, source)
    return config


def check_physics(config: dict[str, Any], source: str | Path) -> None:
    """Constraints a schema cannot state."""
    if {"system", "model"} <= set(config):
        hard = config["model"]["dist_hard_max_A"]
        if hard >= 0.5 * config["system"]["box_edge_A"]:
            raise InputError(source, f"config key 'model.dist_hard_max_A' = {hard} A is not below half the box edge")
        if not config["model"]["dist_soft_min_A"] < config["model"]["dist_soft_max_A"] <= hard:
            raise InputError(source, "config keys 'model.dist_soft_min_A' < 'model.dist_soft_max_A' <= 'model.dist_hard_max_A' do not hold")
    if {"system", "analysis"} <= set(config):
        names = [m["species"] for m in config["system"]["molecules"]]
        for t in config["analysis"]["adf_triplets"]:
            unknown = [s for s in t if s not in names]
            if unknown:
                raise InputError(source, f"config key 'analysis.adf_triplets': species {unknown} not in system.molecules ({names})")
    if not {"system", "aa_md"} <= set(config):
        return
    box_nm = config["system"]["box_edge_A"] / 10.0
    cutoff = config["aa_md"]["cutoff_nm"]
    if cutoff >= 0.5 * box_nm:
        raise InputError(source, f"config key 'aa_md.cutoff_nm' = {cutoff} nm is not below half the box edge ({0.5 * box_nm:.3f} nm)")
    md = config["aa_md"]
    for key in ("equilibration_ps", "production_ps", "output_interval_ps"):
        steps = md[key] * 1000.0 / md["timestep_fs"]
        if abs(steps - round(steps)) > 1e-6:
            raise InputError(source, f"config key 'aa_md.{key}' = {md[key]} ps is not a whole number of {md['timestep_fs']} fs steps")
    if md["output_interval_ps"] > md["production_ps"]:
        raise InputError(source, "config key 'aa_md.output_interval_ps' is longer than the production run")
    species = [m["species"] for m in config["system"]["molecules"]]
    if len(set(species)) != len(species):
        raise InputError(source, f"config key 'system.molecules': species names repeat: {species}")
    check_files(config, source)


def check_files(config: dict[str, Any], source: str | Path, root: Path = Path(".")) -> None:
    """The files the system names exist and agree (each structure has its .itp's atoms), and
    the molecules fit the box, so that a bad molecule stops the run before any job (and before
    Snakemake removes the outputs of the job that would replace them), not in the box job."""
    from kdcg.aa.system import check_atom_types, check_box_fits, read_molecules

    ff = root / config["system"]["forcefield"]
    if not ff.is_file():
        raise InputError(source, f"config key 'system.forcefield': {ff} not found")
    try:
        molecules = read_molecules(config, root)
        check_atom_types(ff, molecules)
    except InputError as err:
        raise InputError(source, f"config key 'system.molecules': {err}") from None
    check_box_fits(config, molecules, source)


def _schema_at(schema: dict, keys: list[str]) -> dict | None:
    for key in keys:
        if schema.get("type") == "object" and key in schema.get("properties", {}):
            schema = schema["properties"][key]
        else:
            return None
    return schema


def coerce_overrides(config: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """Give the values of ``snakemake --config`` the types the schema wants. Snakemake reads
    ``--config 'md={replicas: 3}'`` as strings inside a mapping; each such string becomes the
    YAML value it spells (3, 0.5, true, [1, 2]) where the schema asks for that type."""
    schema = load_schema()
    wanted = {"integer": int, "number": (int, float), "boolean": bool, "array": list, "object": dict}

    def typed(value, types) -> bool:
        return isinstance(value, wanted.get(types, ())) and not (types in ("integer", "number") and isinstance(value, bool))

    def put(keys, value):
        target = config
        for k in keys[:-1]:
            target = target[k]
        target[keys[-1]] = value

    def walk(override, keys):
        if isinstance(override, dict):
            for k, v in override.items():
                walk(v, keys + [k])
            return
        sub = _schema_at(schema, keys) or {}
        if isinstance(override, list):  # 'training={teacher_seeds: [1, 2]}' arrives as ['1', '2']
            item_types = (sub.get("items") or {}).get("type")
            if sub.get("type") == "array" and item_types not in (None, "string"):
                values = [yaml.safe_load(v) if isinstance(v, str) else v for v in override]
                if all(typed(v, item_types) for v in values):
                    put(keys, values)
            return
        if not isinstance(override, str):
            return
        types = sub.get("type")
        if types in (None, "string"):
            return
        value = yaml.safe_load(override)
        if typed(value, types):
            put(keys, value)

    walk(overrides or {}, [])
    return config


def merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """``overlay`` merged onto ``base`` as Snakemake merges --configfile files: mappings key
    by key, everything else (lists included) replaced."""
    out = dict(base)
    for k, v in overlay.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InputError(path, "config file not found") from None
    except IsADirectoryError:
        raise InputError(path, "a config file is expected, this is a folder") from None
    except UnicodeDecodeError as err:
        raise InputError(path, f"not a text file (byte {err.start} is not UTF-8): a config is YAML text") from None
    except yaml.YAMLError as err:
        raise InputError(path, f"not valid YAML: {err}") from None
    if not isinstance(config, dict):
        raise InputError(path, "a config must be a mapping of keys")
    return config


def load_merged(paths: list[str | Path]) -> dict[str, Any]:
    """Several config files merged in order (a base, then overlays), validated as one."""
    config: dict[str, Any] = {}
    for path in paths:
        config = merge(config, read_yaml(path))
    return validate(config, " + ".join(str(p) for p in paths))


def load(path: str | Path, partial: bool = False) -> dict[str, Any]:
    path = Path(path)
    return validate(read_yaml(path), path, partial)


def snapshot(config: dict[str, Any], sections: list[str]) -> dict[str, Any]:
    """The sections of the config one stage reads (written per stage, so that a change to
    another stage's keys does not rerun this one)."""
    return {k: config[k] for k in sections if k in config}


#: training keys that decide which models a run trains, how its jobs are cut and what they
#: draw, not any model's weights
NOT_WEIGHT_KEYS = ("teacher_seeds", "student_variants", "models_per_job", "hippynn_plots", "train_eval_fraction")
#: training keys that decide the train / validation / test split (kdcg.training.splits)
SPLIT_KEYS = ("split_seed", "split_mode", "split_blocks", "valid_fraction", "test_fraction")
#: per stage, the keys of a section that decide nothing the stage writes (all others do): the
#: training jobs' weights do not depend on NOT_WEIGHT_KEYS; CG MD reads the training section
#: only for the split its replicas start from
KEYS_THAT_DECIDE_NOTHING = {
    "training": {"training": lambda key: key in NOT_WEIGHT_KEYS},
    "md": {"training": lambda key: key not in SPLIT_KEYS},
}


def decisive_part(stage: str, stage_config: dict[str, Any]) -> dict[str, Any]:
    """A stage's snapshot without the keys that decide nothing it writes."""
    ignored = KEYS_THAT_DECIDE_NOTHING.get(stage, {})
    return {section: ({k: v for k, v in keys.items() if not ignored[section](k)} if section in ignored else keys)
            for section, keys in stage_config.items()}


def snapshot_digest(stage: str, stage_config: dict[str, Any]) -> str:
    """12 hex digits of the keys that decide a stage's outputs: part of its snapshot's file name,
    so that a changed key names a new file (which Snakemake must make, rerunning exactly that
    stage) without writing anything while the rules are read, and without Snakemake's records."""
    import hashlib
    import json

    text = json.dumps(decisive_part(stage, stage_config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def decides_otherwise(path: Path, stage: str, stage_config: dict[str, Any]) -> bool:
    """Whether an existing snapshot holds other values of the keys that decide the stage's
    outputs than ``stage_config`` (a damaged one does)."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        old = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError):
        return True
    return not isinstance(old, dict) or decisive_part(stage, old) != decisive_part(stage, stage_config)


def write_snapshot(path: Path, stage: str, stage_config: dict[str, Any]) -> bool:
    """Write a stage's snapshot where its content differs from the file's. The file's time
    stamp (what Snakemake compares with the stage's outputs) moves only when a key that decides
    the stage's outputs changed: a changed diagnostic, or a teacher added, is written for the
    jobs that run next without rerunning the finished ones. Returns whether the stamp moved."""
    path = Path(path)
    text = yaml.safe_dump(stage_config, sort_keys=False)
    if path.is_file():
        if path.read_bytes() == text.encode():
            return False
        if not decides_otherwise(path, stage, stage_config):
            stamp = path.stat()
            path.write_text(text)
            os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
            return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return True
