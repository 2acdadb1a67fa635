"""Compile a validated :class:`Repository` into the snapshot of one environment.

The snapshot (``schema/snapshot.schema.json``, documented in
``docs/architecture.md``) is fully normalised: defaults filled in, environment
overrides applied, weights as integer thousandths of a percent, timestamps in
UTC. It is what sync stores in Redis and what every evaluator is built from.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from flagsync.authoring import _walk
from flagsync.authoring.loader import Repository
from flagsync.engine import parse_timestamp, to_rfc3339
from flagsync.errors import ConfigurationError
from flagsync.snapshot import (
    BUCKET_SPACE,
    BUCKETING_VERSION,
    SNAPSHOT_FORMAT,
    Condition,
    Flag,
    Rule,
    ScheduleStep,
    Segment,
    Serve,
    ServeRollout,
    ServeVariant,
    Snapshot,
)


def compile_snapshot(repo: Repository, env: str) -> Snapshot:
    """The snapshot of ``env``. The repository must have validated without errors."""
    if env not in repo.environments:
        raise ConfigurationError(
            f"unknown environment '{env}' (declared: {', '.join(repo.environments)})"
        )
    flags = {key: compile_flag(key, entry.data, env) for key, entry in sorted(repo.flags.items())}
    segments = {key: _segment(entry.data) for key, entry in sorted(repo.segments.items())}
    return {
        "format": SNAPSHOT_FORMAT,
        "bucketing": BUCKETING_VERSION,
        "env": env,
        "flags": flags,
        "segments": segments,
    }


def effective(flag: Mapping[str, Any], env: str) -> dict[str, Any]:
    """The flag's fields with ``environments.<env>`` applied."""
    fields = dict(flag)
    envs = flag.get("environments")
    if isinstance(envs, Mapping) and isinstance(envs.get(env), Mapping):
        for name in _walk.OVERRIDABLE:
            if name in envs[env]:
                fields[name] = envs[env][name]
    fields.pop("environments", None)
    return fields


def compile_flag(key: str, raw: Mapping[str, Any], env: str) -> Flag:
    flag = effective(raw, env)
    kind = _walk.flag_type(flag)
    variants = {name: _plain(value, kind) for name, value in _walk.variants(flag).items()}
    boolean = kind == "boolean"
    out: Flag = {
        "type": kind,
        "kind": flag.get("kind", "release"),
        "description": flag["description"],
        "owner": flag["owner"],
        "tags": list(flag.get("tags", [])),
        "variants": variants,
        "enabled": bool(flag.get("enabled", True)),
        # Only a boolean flag may leave it out (flags.schema.json requires it of the others).
        "off_variant": flag.get("off_variant", "off"),
        "requires": [
            {"flag": req["flag"], "variant": str(req.get("variant", "on"))}
            for req in flag.get("requires", [])
        ],
        "rules": [
            _rule(key, index, rule, boolean) for index, rule in enumerate(flag.get("rules", []))
        ],
        "default": _serve(key, flag.get("default", "off" if boolean else None), boolean),
    }
    if "expires" in flag:
        out["expires"] = flag["expires"]
    if "created" in flag:
        out["created"] = flag["created"]
    return out


def _plain(value: Any, kind: str) -> Any:
    """A variant value as plain JSON data of the flag's type.

    Float flags serve floats even when a value is written ``3`` (otherwise an
    integer-typed caller would accept 3 but not 0.5 of the same flag), and
    json values lose the loader's position-keeping container types.
    """
    if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v, "json") for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, "json") for v in value]
    return value


def _rule(key: str, index: int, rule: Mapping[str, Any], boolean: bool) -> Rule:
    out: Rule = {
        "name": str(rule.get("name") or f"rule {index + 1}"),
        "serve": _serve(key, rule, boolean),
    }
    users = rule.get("users")
    if users:
        out["users"] = [str(user) for user in users]
    segments = _walk.rule_segments(rule)
    if segments:
        out["segments"] = segments
    when = rule.get("when")
    if when:
        out["when"] = [_condition(cond) for cond in when]
    return out


def _condition(cond: Mapping[str, Any]) -> Condition:
    return {
        "attribute": cond["attribute"],
        "op": cond["op"],
        "values": _walk.condition_values(cond),
        "negate": bool(cond.get("negate", False)),
    }


def _segment(raw: Mapping[str, Any]) -> Segment:
    return {
        "users": [str(user) for user in raw.get("users", [])],
        "when": [_condition(cond) for cond in raw.get("when", [])],
    }


def _serve(key: str, node: Any, boolean: bool, inherited: Mapping[str, Any] | None = None) -> Serve:
    """Normalise ``serve``/``rollout``/``schedule`` (or a bare variant name) to one serve."""
    if isinstance(node, str):
        return {"variant": node}
    context = inherited or node
    if "serve" in node:
        return {"variant": node["serve"]}
    if "rollout" in node:
        return {
            "rollout": {
                "variants": _weights(node["rollout"], boolean),
                "bucket_by": str(context.get("bucket_by", "user_id")),
                "salt": str(context.get("salt", key)),
            }
        }
    steps: list[ScheduleStep] = [
        {"at": _utc(step["at"]), "serve": _step_serve(key, step, boolean, context)}
        for step in node["schedule"]
    ]
    return {"schedule": steps}


def _step_serve(
    key: str, step: Mapping[str, Any], boolean: bool, inherited: Mapping[str, Any]
) -> ServeVariant | ServeRollout:
    serve = _serve(key, step, boolean, inherited)
    if "schedule" in serve:  # the schema allows no schedule inside a schedule step
        raise ConfigurationError("a schedule step cannot hold a schedule")
    return serve


def _weights(rollout: Any, boolean: bool) -> list[list[Any]]:
    if isinstance(rollout, Mapping):
        pairs = [(str(name), _thousandths(weight)) for name, weight in rollout.items()]
    else:
        on = _thousandths(rollout)
        pairs = [("on", on), ("off", BUCKET_SPACE - on)]
    return [[name, weight] for name, weight in pairs]


def _thousandths(percent: Any) -> int:
    return int(Decimal(str(percent)) * 1000)


def _utc(value: Any) -> str:
    return to_rfc3339(parse_timestamp(value))


__all__ = ["SNAPSHOT_FORMAT", "compile_flag", "compile_snapshot", "effective"]
