"""Whatever a caller passes, evaluation never raises and never gives a wrong answer.

Hypothesis builds contexts, user ids, defaults and flag names out of hostile
material: objects whose ``__str__``/``__hash__``/``__eq__``/``__bool__`` raise,
``str``/``int``/``float`` subclasses that do the same, mappings whose
iteration raises, unhashable names, numbers beyond any float, megabyte
strings, 10 000-element lists, values nested 10 000 deep. Each answer is
compared with the answer for a clean equivalent: the same context with the
hostile part removed (where no condition reads it), replaced by its value
(subclasses are read by value), or replaced by a plain ``object()`` (what no
operator can use: the condition does not match). The client's four methods
and the OpenFeature provider's five are checked the same way.
"""

from __future__ import annotations

import decimal
import enum
import fractions
import math
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openfeature.evaluation_context import EvaluationContext

from flagsync import ErrorCode, FlagClient, Reason
from flagsync.errors import ConfigurationError
from flagsync.openfeature import FlagsyncProvider

FLAGS = """\
segments:
  staff:
    users: [u-9]
    when:
      - {attribute: email, op: ends_with, values: ["@corp.example"]}
flags:
  f_eq:
    description: d
    owner: o
    tags: [t]
    rules:
      - when: [{attribute: plan, op: eq, values: [pro, 42, true]}]
        serve: on
  f_neq:
    description: d
    owner: o
    tags: [t]
    rules:
      - when: [{attribute: plan, op: eq, values: [free], negate: true}]
        serve: on
  f_in:
    description: d
    owner: o
    tags: [t]
    rules:
      - when: [{attribute: country, op: not_in, values: [DE, FR]}]
        serve: on
  f_contains:
    description: d
    owner: o
    tags: [t]
    rules:
      - when: [{attribute: email, op: contains, values: ["@corp", "admin"]}]
        serve: on
      - when: [{attribute: roles, op: contains, values: [admin, 7]}]
        serve: on
  f_affix:
    description: d
    owner: o
    tags: [t]
    rules:
      - when: [{attribute: hostname, op: starts_with, values: [canary-]}]
        serve: on
      - when: [{attribute: hostname, op: ends_with, values: [.internal], negate: true}]
        serve: off
  f_matches:
    description: d
    owner: o
    tags: [t]
    rules:
      - when: [{attribute: ua, op: matches, values: ["(?i)mobile", "^(a+)+$"]}]
        serve: on
  f_numbers:
    description: d
    owner: o
    tags: [t]
    rules:
      - when: [{attribute: age, op: gte, values: [18]}, {attribute: age, op: lt, values: [1e300]}]
        serve: on
  f_semver:
    description: d
    owner: o
    tags: [t]
    rules:
      - when: [{attribute: app_version, op: semver_gte, values: ["5.2"]}]
        serve: on
  f_time:
    description: d
    owner: o
    tags: [t]
    rules:
      - when: [{attribute: signed_up, op: after, values: ["2025-01-01T00:00:00Z"]}]
        serve: on
  f_exists:
    description: d
    owner: o
    tags: [t]
    rules:
      - when: [{attribute: beta, op: exists, negate: true}]
        serve: on
  f_users:
    description: d
    owner: o
    tags: [t]
    rules:
      - users: [u-1, 42]
        serve: on
      - segment: staff
        serve: on
  f_rollout:
    description: d
    owner: o
    tags: [t]
    default: {rollout: 50}
  f_by_team:
    description: d
    owner: o
    tags: [t]
    rules:
      - rollout: 30
        bucket_by: team
    default: on
  f_prereq:
    description: d
    owner: o
    tags: [t]
    requires: [{flag: f_eq}]
    default: on
  f_static:
    description: d
    owner: o
    tags: [t]
    default: on
  f_json:
    description: d
    owner: o
    tags: [t]
    type: json
    variants: {a: {"k": [1, {"n": null}]}, b: [1, 2]}
    off_variant: b
    rules:
      - when: [{attribute: plan, op: in, values: [pro]}]
        serve: a
    default: b
  f_string:
    description: d
    owner: o
    tags: [t]
    type: string
    variants: {x: "x", y: "y"}
    off_variant: x
    rules:
      - when: [{attribute: country, op: eq, values: [DE]}]
        serve: y
    default: x
  f_deep:
    description: d
    owner: o
    tags: [t]
    type: json
    variants: {a: DEEP_VALUE}
    off_variant: a
    default: a
  f_float:
    description: d
    owner: o
    tags: [t]
    type: float
    variants: {small: 0.5, big: 3}
    off_variant: small
    default: big
"""
ATTRIBUTES = [
    "plan", "country", "email", "roles", "hostname", "ua", "age",
    "app_version", "signed_up", "beta", "team", "user_id",
]  # fmt: skip


FLAGS = FLAGS.replace("DEEP_VALUE", "[" * 55 + "1" + "]" * 55)  # files allow about 60


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlagClient]:
    flags = tmp_path_factory.mktemp("hostile") / "flags"
    flags.mkdir()
    (flags / "flags.yaml").write_text(FLAGS, encoding="utf-8")
    with FlagClient(flags_dir=flags, watch=False) as made:  # no threads
        assert made.last_error is None, made.last_error
        yield made


FLAG_KEYS = sorted(
    line.strip().rstrip(":") for line in FLAGS.splitlines() if line.startswith("  f_")
)


# --- hostile material ----------------------------------------------------------


class Boom(Exception):
    """Raised by hostile objects (not a subclass of anything flagsync catches specially)."""


def _raise(*args: object, **kwargs: object) -> Any:
    raise Boom("hostile")


# __repr__ stays: hypothesis prints failing examples with it. (Evaluation never
# calls it: error messages name the type of what they cannot show.)
HOSTILE_NAMES = (
    "__str__", "__hash__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__",
    "__bool__", "__len__", "__iter__", "__contains__", "__format__", "__float__", "__int__",
    "__index__", "__getitem__", "encode", "startswith", "endswith", "__add__", "__radd__",
)  # fmt: skip
HOSTILE_METHODS = dict.fromkeys(HOSTILE_NAMES, _raise)


class Explosive:
    """Every protocol it could be asked for raises."""

    locals().update(HOSTILE_METHODS)

    def __repr__(self) -> str:
        return "Explosive()"


HostileStr = type("HostileStr", (str,), dict(HOSTILE_METHODS))
HostileInt = type("HostileInt", (int,), dict(HOSTILE_METHODS))
HostileFloat = type("HostileFloat", (float,), dict(HOSTILE_METHODS))


class HostileList(list[object]):
    """Claims to be empty and iterates forever."""

    def __len__(self) -> int:
        return 0

    def __iter__(self) -> Iterator[object]:
        while True:
            yield "admin"


class Plan(str, enum.Enum):
    PRO = "pro"
    FREE = "free"


class Key(str, enum.Enum):
    EQ = "f_eq"
    ROLLOUT = "f_rollout"


def _deep(depth: int) -> Any:
    value: Any = "admin"
    for _ in range(depth):
        value = [value]
    return value


MEGABYTE = "m" * (1 << 20)
TEN_THOUSAND = ["admin"] + [f"r{i}" for i in range(9_999)]
DEEP_LIST = _deep(10_000)
DEEP_DICT: Any = {}
_cursor = DEEP_DICT
for _ in range(10_000):
    _cursor["k"] = {}
    _cursor = _cursor["k"]

NOT_USABLE: list[Callable[[], object]] = [
    Explosive,
    lambda: decimal.Decimal("20"),
    lambda: fractions.Fraction(41, 2),
    lambda: complex(1, 1),
    lambda: b"pro",
    lambda: bytearray(b"pro"),
    lambda: {"plan": "pro"},
    lambda: DEEP_DICT,
    object,
]


class Item:
    """One context value: what the caller passes, and its clean equivalent."""

    def __init__(self, hostile: object, clean: object, label: str) -> None:
        self.hostile, self.clean, self.label = hostile, clean, label

    def __repr__(self) -> str:
        return self.label


UNUSABLE = object()  # the clean stand-in for what no operator can use


def _by_value(base: type, value: Any, cls: type) -> Item:
    return Item(cls(value), base(value), f"{cls.__name__}({value!r})")


clean_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["pro", "free", "DE", "FR", "a@corp.example", "canary-1", "x.internal",
                     "Mobile Safari", "a" * 27 + "!", "5.2", "v5.10.1", "5.2.0-rc.1",
                     "2026-01-01T00:00:00Z", "u-1", "u-9", "42", "admin", "", "\ud800x"]),
    st.text(max_size=30),
    st.lists(st.sampled_from(["admin", "user", 7, True, 7.0]), max_size=4),
)  # fmt: skip

hostile_items = st.one_of(
    clean_values.map(lambda v: Item(v, v, repr(v)[:40])),
    st.sampled_from(NOT_USABLE).map(lambda make: Item(make(), UNUSABLE, "unusable")),
    st.sampled_from(["pro", "DE", "canary-1", "a@corp.example", "5.2.1", "u-1", "Mobile"]).map(
        lambda v: _by_value(str, v, HostileStr)
    ),
    st.sampled_from([18, 42, 7, 1_796_029_200]).map(lambda v: _by_value(int, v, HostileInt)),
    st.sampled_from([18.5, 0.5]).map(lambda v: _by_value(float, v, HostileFloat)),
    st.sampled_from([Plan.PRO, Plan.FREE]).map(lambda v: Item(v, v.value, repr(v))),
    st.just(HostileList(["admin"])).map(lambda v: Item(v, ["admin"], "HostileList")),
    # Oversized and extreme: the clean equivalent is itself (limits are exact rules).
    st.sampled_from([MEGABYTE, TEN_THOUSAND, DEEP_LIST, 10**5000, -(10**400), math.inf]).map(
        lambda v: Item(v, v, f"extreme {type(v).__name__}")
    ),
)


class IterRaises(Mapping[str, object]):
    """A mapping that answers lookups but raises when iterated or measured."""

    def __init__(self, data: dict[str, object]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> object:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        raise Boom("iteration")

    def __len__(self) -> int:
        raise Boom("len")


class GetRaises(IterRaises):
    def __getitem__(self, key: str) -> object:
        raise Boom("lookup")

    def get(self, key: str, default: object = None) -> object:
        raise Boom("lookup")


class NoisyKey:
    """A dict key whose comparisons raise (met only on a hash collision)."""

    __eq__ = _raise

    def __hash__(self) -> int:
        return 12345


class Opaque:
    """Holds a drawn value so that hypothesis never compares or hashes its content."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Opaque({self.value[2] if isinstance(self.value, tuple) else '…'})"


@st.composite
def _contexts(draw: st.DrawFn) -> tuple[object, dict[str, object], str]:
    """(hostile context, clean dict equivalent, kind)."""
    names = draw(st.lists(st.sampled_from(ATTRIBUTES), unique=True, max_size=6))
    items = {name: draw(hostile_items) for name in names}
    hostile: dict[Any, object] = {name: item.hostile for name, item in items.items()}
    clean: dict[str, object] = {name: item.clean for name, item in items.items()}
    # Hostile parts no condition reads: extra keys of every kind.
    for i, extra in enumerate(draw(st.lists(hostile_items, max_size=3))):
        hostile[f"unused_{i}"] = extra.hostile
    if draw(st.booleans()):
        hostile[NoisyKey()] = Explosive()
    kind = draw(st.sampled_from(["dict", "iter-raises", "get-raises"]))
    if kind == "iter-raises":
        return IterRaises(hostile), clean, kind
    if kind == "get-raises":
        return GetRaises(hostile), clean, kind
    return hostile, clean, kind


def contexts() -> st.SearchStrategy[Opaque]:
    return _contexts().map(Opaque)


def _enum_member(key: str) -> object:
    return Key._value2member_map_.get(key, key)


# How a real flag may be named: by its key, a str subclass whose every method
# raises, or a str enum member.
name_forms: list[Callable[[str], object]] = [str, HostileStr, _enum_member]
NO_FLAG: list[object] = [
    "missing", "", "F_EQ", ["f_eq"], {"f_eq": 1}, {"f_eq"}, 42, None, b"f_eq", 1.5,
    Explosive(), HostileStr("missing"),
]  # fmt: skip

DEFAULT = object()


def _same_resolution(got: Any, want: Any) -> None:
    assert (got.value, got.variant, got.reason, got.error_code) == (
        want.value,
        want.variant,
        want.reason,
        want.error_code,
    )


SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _clean_uid(user: Item) -> object:
    # What no operator can use is replaced by a plain object, which none can either.
    return object() if user.clean is UNUSABLE else user.clean


@SETTINGS
@given(context=contexts(), user=hostile_items, form=st.sampled_from(name_forms))
def test_client_methods_never_raise_and_agree_with_the_clean_equivalent(
    client: FlagClient, context: Opaque, user: Item, form: Any
) -> None:
    hostile_ctx, clean_ctx, kind = context.value
    for key in FLAG_KEYS:
        flag = form(key)
        got = client.evaluate(flag, user.hostile, hostile_ctx, DEFAULT)  # type: ignore[arg-type]
        assert got.flag == key
        assert got.error_code is not ErrorCode.GENERAL, got.error_message  # GENERAL is a bug
        if kind == "get-raises":
            # Either the flag read no attribute the mapping had to look up (same answer
            # as without the context), or the lookup failed: default, INVALID_CONTEXT.
            if got.error_code is ErrorCode.INVALID_CONTEXT:
                assert got.value is DEFAULT
                assert "raised Boom" in (got.error_message or "")
                continue
            alone = {} if user.hostile is None else {"user_id": _clean_uid(user)}
            _same_resolution(got, client.evaluate(key, None, alone, DEFAULT))
            continue
        want = client.evaluate(key, _clean_uid(user), dict(clean_ctx), DEFAULT)  # type: ignore[arg-type]
        _same_resolution(got, want)
        enabled = client.is_enabled(flag, user.hostile, hostile_ctx, DEFAULT)  # type: ignore[arg-type]
        assert enabled is (want.value if type(want.value) is bool else DEFAULT)
        assert client.variant(flag, user.hostile, hostile_ctx) == want.variant  # type: ignore[arg-type]
        value = client.get_value(flag, hostile_ctx, DEFAULT, user_id=user.hostile)  # type: ignore[arg-type]
        assert value == want.value


@SETTINGS
@given(context=contexts(), user=hostile_items, index=st.integers(0, len(NO_FLAG) - 1))
def test_names_of_no_flag_give_the_default_and_flag_not_found(
    client: FlagClient, context: Opaque, user: Item, index: int
) -> None:
    # Drawn by index: hypothesis compares the values it draws, which these refuse.
    name = NO_FLAG[index]
    hostile_ctx = context.value[0]
    got = client.evaluate(name, user.hostile, hostile_ctx, DEFAULT)  # type: ignore[arg-type]
    assert isinstance(got.flag, str)
    assert (got.value, got.reason, got.error_code) == (
        DEFAULT,
        Reason.ERROR,
        ErrorCode.FLAG_NOT_FOUND,
    )
    assert client.is_enabled(name, user.hostile, hostile_ctx, DEFAULT) is DEFAULT  # type: ignore[arg-type]
    assert client.variant(name, user.hostile, hostile_ctx) is None  # type: ignore[arg-type]
    assert client.get_value(name, hostile_ctx, DEFAULT, user_id=user.hostile) is DEFAULT  # type: ignore[arg-type]
    assert client.flag_type(name) is None  # type: ignore[arg-type]
    assert client.flag_kind(name) is None  # type: ignore[arg-type]


OPENFEATURE_TYPES: list[tuple[str, type]] = [
    ("resolve_boolean_details", bool),
    ("resolve_string_details", str),
    ("resolve_integer_details", int),
    ("resolve_float_details", float),
    ("resolve_object_details", object),
]


@SETTINGS
@given(
    context=contexts(),
    user=hostile_items,
    default=hostile_items,
    form=st.sampled_from(name_forms),
    unknown=st.integers(0, len(NO_FLAG) - 1),
)
def test_openfeature_resolution_never_raises(  # noqa: PLR0917 (one argument per strategy)
    client: FlagClient, context: Opaque, user: Item, default: Item, form: Any, unknown: int
) -> None:
    provider = FlagsyncProvider(client=client)
    hostile_ctx = context.value[0]
    evaluation_context = EvaluationContext(user.hostile, hostile_ctx)  # type: ignore[arg-type]
    targeting = user.hostile
    if isinstance(targeting, str) and str.__len__(targeting) == 0:
        targeting = None  # an empty targeting key is absent, as in the SDK
    for method, wanted in OPENFEATURE_TYPES:
        resolve = getattr(provider, method)
        for flag in [*(form(key) for key in FLAG_KEYS), NO_FLAG[unknown]]:
            details = resolve(flag, default.hostile, evaluation_context)
            if details.error_code is not None:
                assert details.value is default.hostile
                assert details.reason == "ERROR"
                assert details.error_code != "GENERAL", details.error_message
                continue
            # Without an error, the provider serves what the client does.
            direct = client.evaluate(
                flag, targeting, hostile_ctx, default.hostile, expected_type=wanted
            )
            assert direct.error_code is None
            assert (details.value, details.variant) == (direct.value, direct.variant)
    # Not an EvaluationContext at all, and attributes that are no mapping.
    for odd in (Explosive(), EvaluationContext("u-1", Explosive())):  # type: ignore[arg-type]
        details = provider.resolve_boolean_details("f_eq", False, odd)  # type: ignore[arg-type]
        assert (details.value, details.error_code) == (False, "INVALID_CONTEXT")


def test_a_failing_lookup_is_invalid_context_for_flags_that_read_it(client: FlagClient) -> None:
    details = client.evaluate("f_eq", context=GetRaises({"plan": "pro"}), default="dflt")
    assert (details.value, details.reason, details.error_code) == (
        "dflt",
        Reason.ERROR,
        ErrorCode.INVALID_CONTEXT,
    )
    static = client.evaluate("f_static", context=GetRaises({}), default=False)
    assert (static.value, static.reason) == (True, Reason.STATIC)


def test_non_mapping_contexts_are_invalid_context(client: FlagClient) -> None:
    for context in (["plan", "pro"], "plan=pro", 42, Explosive()):
        details = client.evaluate("f_static", "u-1", context, default=7)  # type: ignore[arg-type]
        assert (details.value, details.error_code) == (7, ErrorCode.INVALID_CONTEXT)
        assert client.is_enabled("f_static", None, context, default=None) is None  # type: ignore[arg-type]


def test_a_mapping_iterated_lazily_keeps_the_user_id_argument(client: FlagClient) -> None:
    context = IterRaises({"plan": "pro", "user_id": "ignored"})
    assert client.is_enabled("f_users", "u-1", context) is True
    assert client.is_enabled("f_users", "u-2", context) is False


def test_expected_types_that_are_not_types_are_a_type_mismatch(client: FlagClient) -> None:
    class Meta(type):
        def __instancecheck__(cls, instance: object) -> bool:
            raise Boom("isinstance")

        def __subclasscheck__(cls, subclass: type) -> bool:
            raise Boom("issubclass")

    class Odd(metaclass=Meta):
        pass

    for wanted in (5, "str", Odd):
        details = client.evaluate("f_string", default="d", expected_type=wanted)  # type: ignore[arg-type]
        assert (details.value, details.error_code) == ("d", ErrorCode.TYPE_MISMATCH)


def test_json_values_nested_to_the_limit_are_served_as_private_copies(client: FlagClient) -> None:
    first = client.get_value("f_json", {"plan": "pro"}, default=None)
    first["k"].append("mutated")
    assert client.get_value("f_json", {"plan": "pro"}, default=None) == {"k": [1, {"n": None}]}


def _depth() -> int:
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1  # type: ignore[assignment]
    return depth


def _at_depth(depth: int, fn: Callable[[], object]) -> object:
    return fn() if _depth() >= depth else _at_depth(depth, fn)


def test_a_caller_deep_in_its_own_recursion_gets_deep_json_values(client: FlagClient) -> None:
    # Copying a json value takes no stack (copy.deepcopy took two frames per
    # level); a caller 40 frames short of the limit still gets a 55-deep value.
    expected = client.get_value("f_deep", default=None)
    got = _at_depth(sys.getrecursionlimit() - 40, lambda: client.evaluate("f_deep", default=None))
    assert got.value == expected  # type: ignore[attr-defined]
    assert got.error_code is None  # type: ignore[attr-defined]


# --- constructing a client -----------------------------------------------------


BAD_ARGUMENTS: list[dict[str, Any]] = [
    {"redis_url": 5},
    {"redis_url": b"redis://localhost"},
    {"env": None},
    {"env": 5},
    {"env": Explosive()},
    {"flags_dir": 5},
    {"cache_path": ["x"]},
    {"poll_interval": "30"},
    {"poll_interval": math.nan},
    {"poll_interval": math.inf},
    {"poll_interval": 0},
    {"init_timeout": None},
    {"init_timeout": 1e300},
    {"socket_timeout": True},
    {"socket_timeout": -1},
    {"debounce": "x"},
    {"debounce": -0.1},
    {"watch": "yes"},
    {"watch": Explosive()},
    {"track_usage": None},
    {"usage_flush_interval": decimal.Decimal("10")},
    {"usage_max_keys": "10"},
    {"usage_max_keys": 0},
    {"usage_max_keys": 1.5},
]


@pytest.mark.parametrize("arguments", BAD_ARGUMENTS, ids=lambda a: next(iter(a)))
def test_bad_constructor_arguments_are_a_configuration_error(
    arguments: dict[str, Any], tmp_path: Path
) -> None:
    arguments = {"flags_dir": tmp_path, "watch": False, **arguments}
    with pytest.raises(ConfigurationError):
        FlagClient(**arguments)
