"""Clients no one here wrote get exactly what the Python library answers.

* Python: ``openfeature-provider-ofrep`` (PyPI) through ``openfeature-sdk``,
  every example flag for 1,000 generated contexts;
* Node: ``@openfeature/server-sdk`` + ``@openfeature/ofrep-provider`` (npm),
  the same comparison on a sample, in a real ``node`` process.

Both against a real ``flagsync serve`` process fed by a real redis-server.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from redis_fixtures import RedisServer, require_redis
from serve_fixtures import JS_DIR, ServeProcess, copy_example_flags, require, serve, sync_flags

from flagsync import FlagClient

pytestmark = pytest.mark.redis

CONTEXTS = 1_000
NODE_SAMPLE = 60


def generated_contexts(count: int, seed: int = 13) -> list[dict[str, Any]]:
    """OpenFeature contexts exercising every attribute the example flags look at."""
    rng = random.Random(seed)
    contexts = []
    for i in range(count):
        context: dict[str, Any] = {"targetingKey": f"user-{rng.randrange(10**6)}"}
        if i % 17 == 0:
            context.pop("targetingKey")  # no user: rollouts fall back to off_variant
        pick = rng.random
        if pick() < 0.6:
            context["country"] = rng.choice(["US", "GB", "DE", "FR", "IE", "AU", "JP"])
        if pick() < 0.5:
            context["email"] = rng.choice(["a@example.com", "b@gmail.com", "c@example.org"])
        if pick() < 0.4:
            context["plan"] = rng.choice(["free", "pro", "enterprise"])
        if pick() < 0.5:
            context["orders_count"] = rng.randrange(0, 5)
        if pick() < 0.4:
            context["app_version"] = rng.choice(["5.1.9", "5.2.0", "5.10.1", "4.0.0", "junk"])
            context["platform"] = rng.choice(["ios", "android", "web"])
            context["device_id"] = f"dev-{rng.randrange(10**6)}"
        if pick() < 0.4:
            context["anonymous_id"] = f"anon-{rng.randrange(10**6)}"
        if pick() < 0.3:
            context["session_id"] = f"s-{rng.randrange(10**6)}"
        if pick() < 0.3:
            context["beta_opt_in"] = rng.choice([True, False])
        if pick() < 0.3:
            context["account_status"] = rng.choice(["active", "suspended"])
        if pick() < 0.3:
            context["hostname"] = rng.choice(["edge-fra-07", "canary-1", "web-3"])
        if pick() < 0.3:
            context["api_key_tier"] = rng.choice(["partner", "basic"])
        contexts.append(context)
    return contexts


def as_flagsync(context: dict[str, Any]) -> dict[str, Any]:
    ctx = dict(context)
    key = ctx.pop("targetingKey", None)
    if key:
        ctx["user_id"] = key
    return ctx


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServeProcess, FlagClient]]:
    require_redis()
    directory = tmp_path_factory.mktemp("serve-clients")
    redis_server = RedisServer(directory / "redis").start()
    flags = copy_example_flags(directory / "flags")
    sync_flags(redis_server.url, flags)
    server = serve(
        directory,
        "--flags-dir",
        str(flags),
        "--no-access-log",
        env={"FLAGSYNC_REDIS_URL": redis_server.url},
    )
    reference = FlagClient(redis_server.url, flags_dir=None, track_usage=False)
    try:
        yield server, reference
    finally:
        reference.close()
        server.stop()
        redis_server.stop()


def expected_rows(
    reference: FlagClient, contexts: list[dict[str, Any]]
) -> list[list[tuple[str, Any, Any]]]:
    keys = sorted(reference.flag_keys)
    return [
        [
            (key, d.value, d.variant)
            for key in keys
            for d in [reference.evaluate(key, context=as_flagsync(c))]
        ]
        for c in contexts
    ]


def test_python_ofrep_provider_agrees_on_every_flag_for_1000_contexts(
    served: tuple[ServeProcess, FlagClient],
) -> None:
    from openfeature import api
    from openfeature.contrib.provider.ofrep import OFREPProvider
    from openfeature.evaluation_context import EvaluationContext

    server, reference = served
    keys = sorted(reference.flag_keys)
    types = {key: reference.flag_type(key) for key in keys}
    contexts = generated_contexts(CONTEXTS)
    defaults = {"boolean": False, "string": "", "integer": 0, "float": 0.0, "json": {}}
    workers = 4
    providers = [OFREPProvider(server.url) for _ in range(workers)]
    for index, provider in enumerate(providers):
        api.set_provider(provider, domain=f"serve-test-{index}")

    def run(index: int) -> list[list[tuple[str, Any, Any]]]:
        client = api.get_client(domain=f"serve-test-{index}")
        resolve = {
            "boolean": client.get_boolean_details,
            "string": client.get_string_details,
            "integer": client.get_integer_details,
            "float": client.get_float_details,
            "json": client.get_object_details,
        }
        rows = []
        for context in contexts[index::workers]:
            ctx = EvaluationContext(
                context.get("targetingKey"),
                {k: v for k, v in context.items() if k != "targetingKey"},
            )
            row = []
            for key in keys:
                details = resolve[str(types[key])](key, defaults[str(types[key])], ctx)
                assert details.error_code is None, (key, context, details.error_message)
                row.append((key, details.value, details.variant))
            rows.append(row)
        return rows

    try:
        with ThreadPoolExecutor(workers) as pool:
            parts = list(pool.map(run, range(workers)))
    finally:
        api.clear_providers()
    got = [row for index in range(workers) for row in parts[index]]
    expected_parts = [
        expected_rows(reference, contexts[index::workers]) for index in range(workers)
    ]
    expected = [row for part in expected_parts for row in part]
    assert len(got) == CONTEXTS
    assert got == expected
    variants = {variant for row in got for _, _, variant in row}
    assert len(variants) > 5  # the contexts reach many outcomes, not one answer 12,000 times


def test_node_ofrep_provider_agrees_on_a_sample(served: tuple[ServeProcess, FlagClient]) -> None:
    node = shutil.which("node")
    require("node", node is not None, "apt-get install nodejs")
    require(
        "the npm packages",
        (JS_DIR / "node_modules" / "@openfeature" / "ofrep-provider").is_dir(),
        "npm ci in tests/js",
    )
    server, reference = served
    keys = sorted(reference.flag_keys)
    contexts = generated_contexts(NODE_SAMPLE, seed=7)
    payload = {
        "baseUrl": server.url,
        "flags": [{"key": k, "type": reference.flag_type(k)} for k in keys],
        "contexts": contexts,
    }
    done = subprocess.run(
        [str(node), str(JS_DIR / "ofrep_node.mjs")],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=JS_DIR,
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    for context, row in zip(contexts, rows, strict=True):
        for item in row:
            expected = reference.evaluate(item["key"], context=as_flagsync(context))
            assert item["errorCode"] is None, item
            assert (item["value"], item["variant"]) == (expected.value, expected.variant), (
                item,
                context,
            )
