"""Campaign configuration: YAML validated against the package's JSON schema.

The schema (``gammadm/schemas/config.schema.json``) is the single source of defaults
and allowed values; the library, the CLI and the Snakefile all validate through it.
A config error names the field (e.g. ``observations[0].irf.site``) and, for a choice,
the allowed values.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .errors import InputError

__all__ = ["ConfigError", "load_schema", "load_config", "validate_config", "mixture_leaves"]


class ConfigError(InputError, ValueError):
    """An invalid campaign configuration; the message names the field."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"config field '{field}': {message}")


def load_schema(name: str = "config") -> dict:
    """A JSON schema shipped with the package (``config`` or ``summary``)."""
    text = resources.files("gammadm.schemas").joinpath(f"{name}.schema.json").read_text()
    return json.loads(text)


def _with_defaults(cls):
    """A validator class that fills schema defaults while validating."""
    validate_props = cls.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if key not in instance:
                    default = sub.get("default", _MISSING)
                    if default is not _MISSING:
                        instance[key] = copy.deepcopy(default)
        yield from validate_props(validator, properties, instance, schema)

    return jsonschema.validators.extend(cls, {"properties": set_defaults})


_MISSING = object()


def _field(path) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<top level>"


def _describe(err: jsonschema.ValidationError) -> tuple[str, str]:
    path = list(err.absolute_path)
    if err.validator == "additionalProperties":
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        allowed = ", ".join(sorted(err.schema.get("properties", {})))
        return _field(path + extra[:1]), f"unknown field; allowed fields here: {allowed}"
    if err.validator == "enum":
        allowed = ", ".join(json.dumps(v) for v in err.validator_value)
        return _field(path), f"{json.dumps(err.instance)} is not allowed; allowed values: {allowed}"
    if err.validator == "required":
        return _field(path), err.message
    return _field(path), err.message


def validate_config(cfg: Mapping[str, Any]) -> dict:
    """Validate a config mapping, fill defaults, run cross-field checks.

    Returns a new dict (the input is not modified). Raises `ConfigError`.
    """
    cfg = copy.deepcopy(dict(cfg))
    schema = load_schema("config")
    base = jsonschema.validators.validator_for(schema)
    Validator = _with_defaults(base)
    validator = Validator(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: (len(e.absolute_path), str(e.path)))
    if errors:
        err = jsonschema.exceptions.best_match(errors)
        field, msg = _describe(err)
        raise ConfigError(field, msg)
    _check_semantics(cfg)
    return cfg


def _check_range(cfg: dict, field: str, value) -> None:
    if value is not None and not value[0] < value[1]:
        raise ConfigError(field, f"lower bound {value[0]} must be below upper bound {value[1]}")


def mixture_leaves(nodes: list[dict]) -> list[str]:
    """Leaf names of a mixture tree, depth first."""
    out: list[str] = []
    for node in nodes:
        out.extend(mixture_leaves(node["children"]) if "children" in node else [node["name"]])
    return out


def _check_tree(nodes: list[dict], where: str) -> None:
    total = sum(n["value"] for n in nodes)
    if abs(total - 1.0) > 1e-9:
        raise ConfigError(where, f"sibling values {[n['value'] for n in nodes]} sum to {total}, not 1")
    for i, node in enumerate(nodes):
        if "children" in node:
            _check_tree(node["children"], f"{where}[{i}].children")


def _check_semantics(cfg: dict) -> None:
    names = [o["name"] for o in cfg["observations"]]
    if len(set(names)) != len(names):
        raise ConfigError("observations", f"observation names must be unique, got {names}")
    for i, obs in enumerate(cfg["observations"]):
        ev = obs["events"]
        if ev["source"] == "dl3" and not ev["file"]:
            raise ConfigError(f"observations[{i}].events.file", "required when events.source is 'dl3'")
    roi = cfg["roi"]
    for key in ("energy_tev", "l_deg", "b_deg"):
        _check_range(cfg, f"roi.{key}", roi[key])
    if roi["energy_tev"][0] <= 0:
        raise ConfigError("roi.energy_tev", "energies must be positive")
    if not -90 <= roi["b_deg"][0] < roi["b_deg"][1] <= 90:
        raise ConfigError("roi.b_deg", "latitudes must lie in [-90, 90]")
    for key in ("energy_tev", "l_deg", "b_deg"):
        _check_range(cfg, f"true_grid.{key}", cfg["true_grid"][key])
    comps = [cfg["dark_matter"]["name"]] + [b["name"] for b in cfg["backgrounds"]]
    if len(set(comps)) != len(comps):
        raise ConfigError("backgrounds", f"component names must be unique, got {comps}")
    if cfg["likelihood"]["mode"] == "fractions":
        if len(cfg["observations"]) != 1:
            raise ConfigError("likelihood.mode", "fractions mode is single-observation; use 'rates'")
        _check_tree(cfg["mixture"], "mixture")
        leaves = mixture_leaves(cfg["mixture"])
        if sorted(leaves) != sorted(comps):
            raise ConfigError("mixture", f"leaves {sorted(leaves)} must be the components {sorted(comps)}")
    if "sbc" in cfg:
        sbc = cfg["sbc"]
        if cfg["likelihood"]["mode"] != "fractions":
            raise ConfigError("sbc", "the calibration sweep simulates fractions mode's "
                              "generative model; set likelihood.mode to 'fractions'")
        if (sbc["posterior_draws"] + 1) % sbc["bins"]:
            raise ConfigError("sbc.bins", f"{sbc['bins']} bins do not divide the "
                              f"{sbc['posterior_draws'] + 1} possible ranks")
    spec = cfg["dark_matter"]["spectrum"]
    if spec["model"] == "channel" and not spec["channel"]:
        raise ConfigError("dark_matter.spectrum.channel", "required when spectrum.model is 'channel'")
    prof = cfg["dark_matter"]["profile"]
    if prof["model"] == "gnfw" and prof["gamma"] is not None and prof["gamma"] >= 1.5:
        raise ConfigError("dark_matter.profile.gamma",
                          f"{prof['gamma']} >= 1.5: J over the central cell diverges")
    for name, prior in cfg["priors"].items():
        kind = prior["type"]
        need = ("low", "high") if kind in ("uniform", "log_uniform") else ("mean", "sigma")
        for key in need:
            if key not in prior:
                raise ConfigError(f"priors.{name}.{key}", f"required for a {kind} prior")
        if kind in ("uniform", "log_uniform") and not prior["low"] < prior["high"]:
            raise ConfigError(f"priors.{name}", "low must be below high")
        if kind == "log_uniform" and prior["low"] <= 0:
            raise ConfigError(f"priors.{name}.low", "a log-uniform prior needs low > 0")
    _check_upper_limits(cfg)


def _check_upper_limits(cfg: dict) -> None:
    """Upper limits need rates mode, masses inside the mass prior, and a bounded
    <sigma v> prior (its low and high bound both limit priors)."""
    masses = cfg["upper_limits"]["masses_TeV"]
    if not masses:
        return
    if cfg["likelihood"]["mode"] != "rates":
        raise ConfigError("upper_limits.masses_TeV", "upper limits on <sigma v> need "
                          "likelihood.mode 'rates'")
    sv = cfg["priors"]["sigmav_cm3_s"]
    if sv["type"] not in ("uniform", "log_uniform") or sv["low"] <= 0:
        raise ConfigError("priors.sigmav_cm3_s", "upper limits need a uniform or log-uniform "
                          "<sigma v> prior with 0 < low < high (the limits' prior range)")
    m = cfg["priors"]["mass_TeV"]
    if m["type"] in ("uniform", "log_uniform"):
        for i, mass in enumerate(masses):
            if not m["low"] <= mass <= m["high"]:
                raise ConfigError(f"upper_limits.masses_TeV[{i}]", f"{mass} TeV is outside "
                                  f"the mass prior's range [{m['low']}, {m['high']}] TeV")


def load_config(source: str | Path | Mapping[str, Any]) -> dict:
    """Read (if a path) and validate a campaign config; see `validate_config`."""
    if isinstance(source, Mapping):
        return validate_config(source)
    path = Path(source)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError("<file>", f"config file {path} not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError("<file>", f"{path} is not valid YAML: {exc}") from None
    if not isinstance(raw, Mapping):
        raise ConfigError("<top level>", f"{path} must hold a mapping")
    return validate_config(raw)
