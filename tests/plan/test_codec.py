"""The plan's JSON form: a lossless round trip, and a clear refusal of anything else.

The launcher reads plans it did not compile (cached, or handed over by a reviewer), so
`plan_from_json` must give back exactly the plan that was written, and turn every other
input (another version, unknown keys, bad base64, wrong types, random damage) into a
`PlanFormatError` whose ``reason`` says what is wrong, never another exception.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.compile.plan_builder import Caller, compile_policy
from sandbox.plan.codec import PlanFormatError, plan_from_json, plan_to_json
from sandbox.plan.model import PLAN_VERSION, Plan
from sandbox.policy.load import load_policy

if TYPE_CHECKING:
    from tests.conftest import CompiledProfile

REPO = Path(__file__).resolve().parents[2]
PROFILES = ("untrusted", "ci-step", "docker-default")


@pytest.fixture(scope="module")
def plan_dict(compiled_profiles: dict[str, CompiledProfile]) -> dict[str, Any]:
    """The untrusted plan as a JSON object, to damage in the tests below."""
    return json.loads(plan_to_json(compiled_profiles["untrusted"].plan))


def reason_for(data: object) -> str:
    text = data if isinstance(data, str) else json.dumps(data)
    with pytest.raises(PlanFormatError) as info:
        plan_from_json(text)
    assert str(info.value) == f"not a usable launch plan: {info.value.reason}"
    return info.value.reason


@pytest.mark.parametrize("name", PROFILES)
def test_each_profile_round_trips_exactly(
    compiled_profiles: dict[str, CompiledProfile], name: str
) -> None:
    """compile -> plan_to_json -> plan_from_json gives an equal plan, BPF bytes included."""
    plan = compiled_profiles[name].plan
    for indent in (2, None):
        back = plan_from_json(plan_to_json(plan, indent=indent))
        assert back == plan
        assert back.seccomp.bpf == plan.seccomp.bpf
    assert plan_from_json(plan_to_json(plan).encode()) == plan


@pytest.mark.parametrize("caller", [Caller(0, 0), Caller(1000, 1000)], ids=["root", "user"])
def test_plans_for_root_and_for_users_round_trip(caller: Caller) -> None:
    """Range (root) and rootless id maps both survive the round trip."""
    plan = compile_policy(load_policy('extends = "ci-step"\n', name="x.toml"), caller)
    assert plan_from_json(plan_to_json(plan)) == plan


def test_json_is_deterministic(compiled_profiles: dict[str, CompiledProfile]) -> None:
    """The same plan always serialises to the same text (plans are compared and hashed)."""
    plan = compiled_profiles["docker-default"].plan
    assert plan_to_json(plan) == plan_to_json(plan_from_json(plan_to_json(plan)))


def test_bpf_is_base64_in_the_json(plan_dict: dict[str, Any],
                                   compiled_profiles: dict[str, CompiledProfile]) -> None:
    """The filter is stored as base64 text of the raw BPF."""
    import base64

    raw = base64.b64decode(plan_dict["seccomp"]["bpf"], validate=True)
    assert raw == compiled_profiles["untrusted"].plan.seccomp.bpf
    assert plan_dict["version"] == PLAN_VERSION


@pytest.mark.parametrize("version", [PLAN_VERSION + 1, 0, "1", None, 1.5, [1]])
def test_other_versions_are_refused(plan_dict: dict[str, Any], version: object) -> None:
    """A plan of another version (or none) is refused, naming both versions."""
    data = copy.deepcopy(plan_dict)
    data["version"] = version
    reason = reason_for(data)
    assert reason == f"plan version {version!r}; this tool reads version {PLAN_VERSION}"


def test_a_missing_version_is_refused(plan_dict: dict[str, Any]) -> None:
    """No version key: refused as version None."""
    data = copy.deepcopy(plan_dict)
    del data["version"]
    assert reason_for(data) == f"plan version None; this tool reads version {PLAN_VERSION}"


def test_a_boolean_version_is_refused(plan_dict: dict[str, Any]) -> None:
    """true == 1 in Python, but a boolean is not a version."""
    data = copy.deepcopy(plan_dict)
    data["version"] = True
    assert "version" in reason_for(data)


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ((), "plan has unknown keys ['surprise']"),
        (("seccomp",), "plan.seccomp has unknown keys ['surprise']"),
        (("mounts", 0), "plan.mounts[0] has unknown keys ['surprise']"),
        (("limits", "rlimits", 0), "plan.limits.rlimits[0] has unknown keys ['surprise']"),
    ],
)
def test_unknown_keys_are_refused_where_they_are(
    plan_dict: dict[str, Any], path: tuple[str | int, ...], reason: str
) -> None:
    """An unknown key anywhere is refused with its place: a newer writer's field is not
    silently dropped."""
    data = copy.deepcopy(plan_dict)
    target: Any = data
    for part in path:
        target = target[part]
    target["surprise"] = 1
    assert reason_for(data) == reason


@pytest.mark.parametrize("bad", ["not base64!", "QUJ", "QU JD", "Zm9v\n", "Zm9v=v", 12, None])
def test_bad_base64_is_refused(plan_dict: dict[str, Any], bad: object) -> None:
    """The filter must be strict base64 text."""
    data = copy.deepcopy(plan_dict)
    data["seccomp"]["bpf"] = bad
    assert reason_for(data) in (
        "plan.seccomp.bpf is not valid base64",
        "plan.seccomp.bpf must be base64 text",
    )


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        (("seccomp", "instructions"), "475", "plan.seccomp.instructions must be int"),
        (("seccomp", "instructions"), True, "plan.seccomp.instructions must be int"),
        (("seccomp", "instructions"), 4.0, "plan.seccomp.instructions must be int"),
        (("mounts",), {}, "plan.mounts must be a list"),
        (("namespaces",), [], "plan.namespaces must be an object"),
        (("namespaces", "create"), "user", "plan.namespaces.create must be a list"),
        (("namespaces", "create", 0), 1, "plan.namespaces.create[0] must be str"),
        (("process", "uid"), "1000", "plan.process.uid must be int"),
        (("limits", "cpu_cores"), "1", "plan.limits.cpu_cores must be float"),
        (("audit", "required"), "yes", "plan.audit.required must be bool"),
        (("policy_name",), None, "plan.policy_name must be str"),
    ],
)
def test_wrong_types_are_refused_with_their_place(
    plan_dict: dict[str, Any], path: tuple[str | int, ...], value: object, reason: str
) -> None:
    """A value of the wrong JSON type is refused, naming the field."""
    data = copy.deepcopy(plan_dict)
    target: Any = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    assert reason_for(data) == reason


def test_a_missing_field_is_refused(plan_dict: dict[str, Any]) -> None:
    """A required field left out is a PlanFormatError naming the object and the field."""
    data = copy.deepcopy(plan_dict)
    del data["seccomp"]["sha256"]
    reason = reason_for(data)
    assert reason.startswith("plan.seccomp: ")
    assert "sha256" in reason


def test_an_integer_is_accepted_where_a_float_is_expected(plan_dict: dict[str, Any]) -> None:
    """JSON writes 1.0 as 1 in some tools: an int where a float belongs is read as float."""
    data = copy.deepcopy(plan_dict)
    data["limits"]["cpu_cores"] = 2
    plan = plan_from_json(json.dumps(data))
    assert plan.limits.cpu_cores == 2.0
    assert isinstance(plan.limits.cpu_cores, float)


@pytest.mark.parametrize(
    ("text", "reason_start"),
    [
        ("", "not JSON ("),
        ("{", "not JSON ("),
        ("[1, 2]", "the top level must be an object"),
        ('"plan"', "the top level must be an object"),
        ("[" * 100_000 + "]" * 100_000, "not JSON ("),
        (b"\xff\xfe", "not JSON ("),
    ],
)
def test_non_plans_are_refused(text: str | bytes, reason_start: str) -> None:
    """Text that is not a JSON object (deep nesting and bad bytes included) is refused."""
    with pytest.raises(PlanFormatError) as info:
        plan_from_json(text)
    assert info.value.reason.startswith(reason_start)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
              st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=6,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += _paths(item, (*prefix, index))
    return out


@settings(max_examples=300, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_damage_is_a_plan_or_a_plan_format_error(
    plan_dict: dict[str, Any], data: st.DataObject
) -> None:
    """Replace, delete or add random values anywhere: the result is a Plan (when the
    damage happens to be well-typed) or a PlanFormatError, never another exception."""
    damaged = copy.deepcopy(plan_dict)
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(damaged)
        path = data.draw(st.sampled_from(paths))
        parent: Any = damaged
        for part in path[:-1]:
            parent = parent[part]
        how = data.draw(st.sampled_from(["replace", "delete", "add"]))
        if how == "replace":
            parent[path[-1]] = data.draw(json_values)
        elif how == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[data.draw(st.text(max_size=5))] = data.draw(json_values)
        else:
            parent.append(data.draw(json_values))
    try:
        plan = plan_from_json(json.dumps(damaged))
    except PlanFormatError as error:
        assert error.reason
    else:
        assert isinstance(plan, Plan)


def test_reading_a_plan_imports_no_policy_or_compiler_library(tmp_path: Path,
        compiled_profiles: dict[str, CompiledProfile]) -> None:
    """The launcher's fast path: decoding a plan pulls in neither cerberus, tomllib,
    pyseccomp, structlog nor pyroute2, nor our policy or compiler packages."""
    path = tmp_path / "plan.json"
    path.write_text(plan_to_json(compiled_profiles["untrusted"].plan))
    code = (
        "import sys\n"
        "from sandbox.plan.codec import plan_from_json\n"
        "plan_from_json(open(sys.argv[1]).read())\n"
        "bad = ('cerberus', 'tomllib', 'pyseccomp', 'structlog', 'pyroute2',\n"
        "       'sandbox.policy', 'sandbox.compile')\n"
        "print(sorted(m for m in sys.modules if m.startswith(bad)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(path)], cwd=REPO,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_plan_whose_bpf_does_not_match_its_hash_or_length_is_refused():
    """An edited or truncated filter in a plan file is refused, never handed to the launcher."""
    import json

    from sandbox.compile.plan_builder import compile_policy
    from sandbox.plan.codec import PlanFormatError, plan_from_json, plan_to_json
    from sandbox.policy.load import load_profile

    data = json.loads(plan_to_json(compile_policy(load_profile("untrusted"))))
    import base64

    program = base64.b64decode(data["seccomp"]["bpf"])
    for damaged, reason in (
        (program[:-8], "instructions"),
        (program[:-3], "whole number"),
        (program[:-8] + bytes(8), "sha256"),
    ):
        copy = json.loads(json.dumps(data))
        copy["seccomp"]["bpf"] = base64.b64encode(damaged).decode()
        if reason == "sha256":
            copy["seccomp"]["instructions"] = len(damaged) // 8
        try:
            plan_from_json(json.dumps(copy))
        except PlanFormatError as exc:
            assert reason in exc.reason
        else:
            raise AssertionError(f"damaged BPF accepted ({reason})")
