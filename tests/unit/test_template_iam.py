"""Least privilege: each function's IAM policies in template.yaml grant exactly what its code calls.

What a function's code can call is read from the source: the modules its handler
imports (transitively, within ``engine`` and ``functions``, lazy imports included,
``if TYPE_CHECKING:`` blocks not), plus the tool modules the template loads, are
scanned for boto3 client calls (``.put_item(``, ``.send_message(``...), and
:data:`OPERATIONS` maps each botocore operation to the IAM actions it needs. A
``transact_write_items`` needs the action of each kind of part its module builds
(``{"Put": ...}`` is ``PutItem``...). Then, per function:

* every granted action is one its code calls (no unused action, no ``service:*``);
* every action its code calls is granted, unless :data:`NOT_NEEDED` says why the
  function never reaches that call;
* every resource is the one :data:`RESOURCES` names for the action (no ``*``).

SAM's own managed policies (basic execution, X-Ray, SQS polling for event source
mappings) are added by SAM, not listed in the template, and not checked here.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from local.resources import load_template

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("engine", "functions")

# botocore operation (as the client method is named) -> the IAM actions it needs.
OPERATIONS: dict[str, frozenset[str]] = {
    # DynamoDB
    "get_item": frozenset({"dynamodb:GetItem"}),
    "put_item": frozenset({"dynamodb:PutItem"}),
    "update_item": frozenset({"dynamodb:UpdateItem"}),
    "delete_item": frozenset({"dynamodb:DeleteItem"}),
    "query": frozenset({"dynamodb:Query"}),
    "scan": frozenset({"dynamodb:Scan"}),
    "batch_get_item": frozenset({"dynamodb:BatchGetItem"}),
    "batch_write_item": frozenset({"dynamodb:BatchWriteItem"}),
    "transact_get_items": frozenset({"dynamodb:GetItem"}),
    "transact_write_items": frozenset(),  # the actions of its parts: TRANSACT_PARTS
    # SQS
    "send_message": frozenset({"sqs:SendMessage"}),
    "send_message_batch": frozenset({"sqs:SendMessage"}),
    "change_message_visibility": frozenset({"sqs:ChangeMessageVisibility"}),
    "change_message_visibility_batch": frozenset({"sqs:ChangeMessageVisibility"}),
    "receive_message": frozenset({"sqs:ReceiveMessage"}),
    "delete_message": frozenset({"sqs:DeleteMessage"}),
    "delete_message_batch": frozenset({"sqs:DeleteMessage"}),
    "get_queue_attributes": frozenset({"sqs:GetQueueAttributes"}),
    # S3: without ListBucket a missing key answers 403 instead of the 404 engine/aws/s3.py expects.
    "get_object": frozenset({"s3:GetObject", "s3:ListBucket"}),
    "head_object": frozenset({"s3:GetObject", "s3:ListBucket"}),
    "put_object": frozenset({"s3:PutObject"}),
    "delete_object": frozenset({"s3:DeleteObject"}),
    "delete_objects": frozenset({"s3:DeleteObject"}),
    "list_objects_v2": frozenset({"s3:ListBucket"}),
    # EventBridge Scheduler: a schedule's target role is passed to the scheduler at creation.
    "create_schedule": frozenset({"scheduler:CreateSchedule", "iam:PassRole"}),
    "delete_schedule": frozenset({"scheduler:DeleteSchedule"}),
    # API Gateway management API
    "post_to_connection": frozenset({"execute-api:ManageConnections"}),
    "get_connection": frozenset({"execute-api:ManageConnections"}),
    "delete_connection": frozenset({"execute-api:ManageConnections"}),
}

# A TransactWriteItems request is authorised per part (there is no dynamodb:TransactWriteItems action).
TRANSACT_PARTS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}

# Actions a function's modules can call but the function never does, with the reason.
_DELETES_ONLY_FROM_THE_API = "only DELETE /graphs/{id} and DELETE /runs/{id} delete graphs and runs"
_NO_SCHEDULES = "it never moves a run past a wait nor changes a graph, so it creates and deletes no schedule"
NOT_NEEDED: dict[str, dict[str, str]] = {
    "DeadLetterFunction": {
        "sqs:SendMessage": "fail_run only commits the run as FAILED; it enqueues nothing",
        "dynamodb:DeleteItem": _DELETES_ONLY_FROM_THE_API,
        "scheduler:CreateSchedule": "fail_run only cancels a failed run's timer (DeleteSchedule)",
        "iam:PassRole": "fail_run creates no schedule, so it passes no role",
    },
    "WebSocketFunction": {
        "dynamodb:DeleteItem": _DELETES_ONLY_FROM_THE_API,
        "scheduler:CreateSchedule": _NO_SCHEDULES,
        "scheduler:DeleteSchedule": _NO_SCHEDULES,
        "iam:PassRole": _NO_SCHEDULES,
    },
    "StepFunction": {"dynamodb:DeleteItem": _DELETES_ONLY_FROM_THE_API},
    "TriggerFunction": {
        "dynamodb:DeleteItem": _DELETES_ONLY_FROM_THE_API,
        "scheduler:CreateSchedule": "start_triggered_run only starts runs, whose first message is due at once",
        "execute-api:ManageConnections": "starting a run publishes nothing: its records go out from its steps",
        "scheduler:DeleteSchedule": _NO_SCHEDULES,
        "iam:PassRole": _NO_SCHEDULES,
    },
}

_STATE_BUCKET_OBJECTS = "${StateBucket.Arn}/*"  # object keys: a wildcard under the bucket is required
_SCHEDULES = "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule/${ScheduleGroup}/*"
_CONNECTIONS = "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${WebSocketApi}/${Stage}/POST/@connections/*"

# The one resource each action may be granted on (CloudFormation references, as strings).
RESOURCES: dict[str, str] = {
    "dynamodb:*": "WorkflowTable.Arn",
    "sqs:*": "StepQueue.Arn",
    "s3:GetObject": _STATE_BUCKET_OBJECTS,
    "s3:PutObject": _STATE_BUCKET_OBJECTS,
    "s3:DeleteObject": _STATE_BUCKET_OBJECTS,
    "s3:ListBucket": "StateBucket.Arn",
    "execute-api:ManageConnections": _CONNECTIONS,
    "scheduler:*": _SCHEDULES,
    "iam:PassRole": "TimerSchedulerRole.Arn",
}

# Where a function's resource differs: the WebSocket function sends only to its replay queue (never
# starts or advances a run) and also reads whether a connection is open (GET @connections/{id}).
_BOTH_ROLES = frozenset({"TimerSchedulerRole.Arn", "TriggerSchedulerRole.Arn"})
FUNCTION_RESOURCES: dict[str, dict[str, frozenset[str]]] = {
    # The API creates timers (a callback's time-out on resume) and the graphs' trigger schedules.
    "ApiFunction": {"iam:PassRole": _BOTH_ROLES},
    "JwtApiFunction": {"iam:PassRole": _BOTH_ROLES},
    "WebSocketFunction": {
        "sqs:SendMessage": frozenset({"WebSocketReplayQueue.Arn"}),
        "execute-api:ManageConnections": frozenset({_CONNECTIONS, _CONNECTIONS.replace("/POST/", "/GET/")}),
    },
}


# ---------------------------------------------------------------- what the code calls


def module_path(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child)])
            continue
        yield node
        yield from _runtime_nodes(node)


def _imports(module: str, tree: ast.AST) -> Iterator[str]:
    package = module if module_path(module) == ROOT.joinpath(*module.split("."), "__init__.py") else None
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = (package or module).split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            yield name
            yield from (f"{name}.{alias.name}" for alias in node.names)


@cache
def _module_imports(module: str) -> tuple[str, ...]:
    path = module_path(module)
    assert path is not None
    return tuple(_imports(module, ast.parse(path.read_text())))


def reachable_modules(roots: Iterable[str]) -> set[str]:
    """``roots`` and every project module they import, with their parent packages."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        module = todo.pop()
        if module in seen or module.split(".")[0] not in PACKAGES:
            continue
        if module_path(module) is None:
            continue
        seen.add(module)
        parts = module.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        todo.extend(_module_imports(module))
    return seen


def _is_client(node: ast.expr) -> bool:
    """``x.client`` or ``client(...)`` / ``wiring.client(...)``: a boto3 client, as this codebase names them."""
    if isinstance(node, ast.Call):
        func = node.func
        return (isinstance(func, ast.Attribute) and func.attr == "client") or (
            isinstance(func, ast.Name) and func.id == "client"
        )
    return isinstance(node, ast.Attribute) and node.attr == "client"


@dataclass
class CodeUse:
    actions: set[str] = field(default_factory=set)
    unknown: set[str] = field(default_factory=set)  # client calls OPERATIONS does not know


def actions_of_source(source: str, where: str = "<source>") -> CodeUse:
    """The IAM actions the boto3 client calls in one module's source need."""
    tree = ast.parse(source)
    use = CodeUse()
    transact = False
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        name = node.func.attr
        if name in OPERATIONS:
            use.actions |= OPERATIONS[name]
            transact = transact or name == "transact_write_items"
        elif _is_client(node.func.value):
            use.unknown.add(f"{where}: {name}")
    if transact:
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict):
                use.actions |= {
                    TRANSACT_PARTS[k.value]
                    for k in node.keys
                    if isinstance(k, ast.Constant) and isinstance(k.value, str) and k.value in TRANSACT_PARTS
                }
    return use


@cache
def _module_use(module: str) -> CodeUse:
    path = module_path(module)
    assert path is not None
    return actions_of_source(path.read_text(), module)


def code_actions(modules: Iterable[str]) -> CodeUse:
    total = CodeUse()
    for module in sorted(modules):
        use = _module_use(module)
        total.actions |= use.actions
        total.unknown |= use.unknown
    return total


def functions_of(template: dict[str, Any]) -> dict[str, list[str]]:
    """Each function's root modules: its handler's module and the tool modules it loads."""
    env = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    out: dict[str, list[str]] = {}
    for logical_id, res in template["Resources"].items():
        if res["Type"] != "AWS::Serverless::Function":
            continue
        props = res["Properties"]
        variables = {**env, **props.get("Environment", {}).get("Variables", {})}
        tools = [m.strip() for m in str(variables.get("WORKFLOW_TOOL_MODULES", "")).split(",") if m.strip()]
        out[logical_id] = [props["Handler"].rsplit(".", 1)[0], *tools]
    return out


# ---------------------------------------------------------------- what the template grants


def _resource_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        [(key, inner)] = value.items()
        if key == "Fn::GetAtt":
            return inner if isinstance(inner, str) else ".".join(inner)
        if key == "Fn::Sub" and isinstance(inner, str):
            return inner
        if key == "Ref":
            return f"Ref:{inner}"
    return repr(value)


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def granted(template: dict[str, Any], function: str) -> tuple[set[tuple[str, str]], list[str]]:
    """``(action, resource)`` pairs the function's policies allow, and problems with how they are written."""
    pairs: set[tuple[str, str]] = set()
    problems: list[str] = []
    resources = template["Resources"]
    for policy in resources[function]["Properties"].get("Policies", []):
        if isinstance(policy, dict) and set(policy) == {"Ref"} and policy["Ref"] in resources:
            document = resources[policy["Ref"]]["Properties"]["PolicyDocument"]
        elif isinstance(policy, dict) and "Statement" in policy:
            document = policy
        else:
            problems.append(f"{function}: policy {policy!r} is not a policy document the test can read")
            continue
        for statement in _listed(document["Statement"]):
            if statement.get("Effect") != "Allow":
                continue
            if "NotAction" in statement or "NotResource" in statement:
                problems.append(f"{function}: NotAction/NotResource grants more than it names")
            for action in _listed(statement.get("Action", [])):
                for res in _listed(statement.get("Resource", [])):
                    pairs.add((str(action), _resource_text(res)))
    return pairs, problems


def _expected_resources(function: str, action: str) -> frozenset[str]:
    special = FUNCTION_RESOURCES.get(function, {}).get(action)
    if special is not None:
        return special
    expected = RESOURCES.get(action) or RESOURCES.get(f"{action.partition(':')[0]}:*")
    return frozenset({expected}) if expected else frozenset()


def iam_problems(template: dict[str, Any]) -> list[str]:
    """Everything that makes the template's policies differ from what the code calls (empty when least privilege)."""
    problems: list[str] = []
    for function, roots in sorted(functions_of(template).items()):
        use = code_actions(reachable_modules(roots))
        problems += [f"{function}: client call {u} is not in OPERATIONS" for u in sorted(use.unknown)]
        pairs, written = granted(template, function)
        problems += written
        actions = {a for a, _ in pairs}
        exempt = NOT_NEEDED.get(function, {})
        for action in sorted(actions - use.actions):
            problems.append(f"{function}: grants {action}, which its code never calls")
        for action in sorted(use.actions - actions - set(exempt)):
            problems.append(f"{function}: its code calls for {action}, which none of its policies grants")
        for action in sorted(set(exempt) - use.actions):
            problems.append(f"{function}: NOT_NEEDED lists {action}, which its code cannot call anyway")
        for action in sorted(set(exempt) & actions):
            problems.append(f"{function}: grants {action}, which NOT_NEEDED says it never needs")
        for action, res in sorted(pairs):
            expected = _expected_resources(function, action)
            if res not in expected:
                problems.append(f"{function}: {action} on {res}, expected {' or '.join(sorted(expected))}")
    return problems


# ---------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def test_every_function_is_granted_exactly_what_its_code_calls(template: dict[str, Any]) -> None:
    assert iam_problems(template) == []


def test_the_scan_finds_the_calls_each_function_makes(template: dict[str, Any]) -> None:
    roots = functions_of(template)
    step = code_actions(reachable_modules(roots["StepFunction"])).actions
    api = code_actions(reachable_modules(roots["ApiFunction"])).actions
    assert {"sqs:SendMessage", "sqs:ChangeMessageVisibility", "dynamodb:UpdateItem"} <= step
    assert "execute-api:ManageConnections" in step
    assert "sqs:ChangeMessageVisibility" not in api
    assert "dynamodb:PutItem" in api


def _doctored(template: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(template)


def _statements(template: dict[str, Any], policy: str) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = template["Resources"][policy]["Properties"]["PolicyDocument"][
        "Statement"
    ]
    return statements


def test_an_unused_action_fails(template: dict[str, Any]) -> None:
    doctored = _doctored(template)
    _statements(doctored, "TableAccessPolicy")[0]["Action"].append("sqs:ReceiveMessage")
    problems = iam_problems(doctored)
    assert "ApiFunction: grants sqs:ReceiveMessage, which its code never calls" in problems
    assert "StepFunction: grants sqs:ReceiveMessage, which its code never calls" in problems


def test_an_action_that_is_not_an_iam_action_fails(template: dict[str, Any]) -> None:
    doctored = _doctored(template)
    _statements(doctored, "TableAccessPolicy")[0]["Action"].append("dynamodb:TransactWriteItems")
    assert "ApiFunction: grants dynamodb:TransactWriteItems, which its code never calls" in iam_problems(
        doctored
    )


def test_a_missing_action_fails(template: dict[str, Any]) -> None:
    doctored = _doctored(template)
    statement = _statements(doctored, "TableAccessPolicy")[0]
    statement["Action"] = [a for a in statement["Action"] if a != "dynamodb:Query"]
    assert (
        "StepFunction: its code calls for dynamodb:Query, which none of its policies grants"
        in iam_problems(doctored)
    )


def test_a_wildcard_resource_or_action_fails(template: dict[str, Any]) -> None:
    doctored = _doctored(template)
    _statements(doctored, "TableAccessPolicy")[0]["Resource"] = "*"
    _statements(doctored, "BlobAccessPolicy")[0]["Action"] = "s3:*"
    problems = iam_problems(doctored)
    assert "ApiFunction: dynamodb:GetItem on *, expected WorkflowTable.Arn" in problems
    assert "ApiFunction: grants s3:*, which its code never calls" in problems


def test_a_call_the_table_does_not_know_fails() -> None:
    use = actions_of_source("def f(self):\n    self.client.restore_table_from_backup(TableName='t')\n")
    assert use.unknown == {"<source>: restore_table_from_backup"}


def test_transaction_parts_decide_the_actions() -> None:
    source = (
        "def f(self):\n"
        "    self.client.transact_write_items(TransactItems=[{'Put': {}}, {'ConditionCheck': {}}])\n"
    )
    assert actions_of_source(source).actions == {"dynamodb:PutItem", "dynamodb:ConditionCheckItem"}
