"""Generate a large, realistic flag tree for benchmarks."""

from __future__ import annotations

from pathlib import Path


def flag_yaml(index: int, variant: int = 0) -> str:
    key = f"flag_{index:05d}"
    kind = index % 4
    lines = [
        f"  {key}:",
        f"    description: Generated flag number {index}",
        f"    owner: team-{index % 17}",
        f"    tags: [generated, group-{index % 9}]",
        "    expires: 2099-01-01",
    ]
    percent = (index * 7 + variant * 13) % 101
    if kind == 0:
        lines.append(f"    default: {{rollout: {percent}}}")
    elif kind == 1:
        lines += [
            "    rules:",
            "      - name: employees",
            "        segment: employees",
            "        serve: on",
            "      - when:",
            "          - {attribute: country, op: in, values: [DE, FR, NL]}",
            "          - {attribute: app_version, op: semver_gte, values: ['5.2.0']}",
            f"        rollout: {percent}",
            "    default: off",
        ]
    elif kind == 2:
        lines += [
            "    type: string",
            "    variants: {control: a, blue: b, green: c}",
            "    off_variant: control",
            "    default:",
            "      rollout: {control: 34, blue: 33, green: 33}",
        ]
    else:
        lines += [
            "    rules:",
            f"      - users: [user-{index}, user-{index + 1}]",
            "        serve: on",
            "    default: " + ("on" if variant % 2 else "off"),
        ]
    return "\n".join(lines) + "\n"


def generate(root: Path, flags: int = 10_000, files: int = 1_000, variant: int = 0) -> Path:
    """Write ``flags`` flags spread over ``files`` files under ``root``; returns ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "segments.yaml").write_text(
        "segments:\n  employees:\n    description: staff\n"
        "    when:\n      - {attribute: email, op: ends_with, values: ['@example.com']}\n",
        encoding="utf-8",
    )
    per_file = max(1, flags // files)
    for number in range(files):
        start = number * per_file
        body = "".join(flag_yaml(i, variant) for i in range(start, min(start + per_file, flags)))
        sub = root / f"team{number % 10}"
        sub.mkdir(exist_ok=True)
        (sub / f"flags_{number:04d}.yaml").write_text("flags:\n" + body, encoding="utf-8")
    return root
