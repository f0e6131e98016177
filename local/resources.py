"""Create the template's table, bucket and queues on any endpoint, from ``template.yaml`` itself.

Only the resources the handlers talk to are created; the rest (functions, alarms...) is ignored.

Tests (moto in-process) and the local stack (moto server) both call
:func:`create_resources`, so the local schema cannot drift from the deployed one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """A YAML loader that keeps CloudFormation's short tags (``!Ref``, ``!GetAtt``...) as data."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {f"Fn::{suffix}" if suffix not in ("Ref", "Condition") else suffix: value}


_CfnLoader.add_multi_constructor("!", _tag)


@cache
def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    with path.open() as fh:
        return yaml.load(fh, Loader=_CfnLoader)  # type: ignore[no-any-return]


def resolve(value: Any, template: Mapping[str, Any] | None = None) -> Any:
    """A property's value with ``!Ref`` to a parameter and ``!FindInMap`` resolved from the parameters' defaults.

    Other intrinsic functions (``!GetAtt``, ``!Sub``...) come back as they are.
    """
    template = template if template is not None else load_template()
    if isinstance(value, dict) and len(value) == 1:
        [(name, argument)] = value.items()
        parameters = template.get("Parameters", {})
        if name == "Ref" and isinstance(argument, str) and argument in parameters:
            return parameters[argument].get("Default")
        if name == "Fn::FindInMap" and isinstance(argument, list) and len(argument) == 3:
            keys = [resolve(part, template) for part in argument]
            if all(isinstance(k, str | int | float) for k in keys):
                table, top, second = (str(k) for k in keys)
                return template["Mappings"][table][top][second]
    return value


def resource(logical_id: str) -> dict[str, Any]:
    """The ``Properties`` of one resource in the template, parameters and mappings resolved at the top level."""
    properties = load_template()["Resources"][logical_id].get("Properties", {})
    return {key: resolve(value) for key, value in properties.items()}


@dataclass(frozen=True)
class Resources:
    table_name: str
    bucket: str
    queue_url: str
    queue_arn: str
    dlq_url: str
    dlq_arn: str
    parking_url: str
    parking_arn: str
    max_receive_count: int
    visibility_timeout: int
    replay_url: str = ""
    replay_arn: str = ""


def create_resources(
    dynamodb: Any, sqs: Any, s3: Any, *, prefix: str = "graphflow", region: str = "us-east-1"
) -> Resources:
    """Create ``WorkflowTable``, ``StateBucket``, the step queue with its DLQ and parking queue, and ``WebSocketReplayQueue`` as the template defines them."""
    table = resource("WorkflowTable")
    table_name = f"{prefix}-table"
    dynamodb.create_table(
        TableName=table_name,
        BillingMode=table["BillingMode"],
        AttributeDefinitions=table["AttributeDefinitions"],
        KeySchema=table["KeySchema"],
    )
    ttl = table.get("TimeToLiveSpecification")
    if ttl:
        dynamodb.update_time_to_live(TableName=table_name, TimeToLiveSpecification=ttl)

    bucket = f"{prefix}-state"
    if region == "us-east-1":
        s3.create_bucket(Bucket=bucket)
    else:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})

    parking_url, parking_arn = _create_queue(
        sqs, f"{prefix}-steps-parking.fifo", resource("StepParkingQueue")
    )
    dlq_url, dlq_arn = _create_queue(
        sqs, f"{prefix}-steps-dlq.fifo", resource("StepDeadLetterQueue"), dead_letter_arn=parking_arn
    )
    props = resource("StepQueue")
    queue_url, queue_arn = _create_queue(sqs, f"{prefix}-steps.fifo", props, dead_letter_arn=dlq_arn)
    replay_url, replay_arn = _create_queue(sqs, f"{prefix}-ws-replay", resource("WebSocketReplayQueue"))
    return Resources(
        table_name=table_name,
        bucket=bucket,
        queue_url=queue_url,
        queue_arn=queue_arn,
        dlq_url=dlq_url,
        dlq_arn=dlq_arn,
        parking_url=parking_url,
        parking_arn=parking_arn,
        max_receive_count=int(props["RedrivePolicy"]["maxReceiveCount"]),
        visibility_timeout=int(props.get("VisibilityTimeout", 30)),
        replay_url=replay_url,
        replay_arn=replay_arn,
    )


def _create_queue(
    sqs: Any, name: str, props: dict[str, Any], *, dead_letter_arn: str | None = None
) -> tuple[str, str]:
    """Create a queue with the template's plain attributes, its ``RedrivePolicy`` pointing at ``dead_letter_arn``."""
    attributes = _queue_attributes(props)
    redrive = props.get("RedrivePolicy")
    if redrive is not None:
        if dead_letter_arn is None:
            raise ValueError(f"{name} has a RedrivePolicy: give its dead-letter queue's ARN")
        attributes["RedrivePolicy"] = (
            f'{{"deadLetterTargetArn":"{dead_letter_arn}","maxReceiveCount":{int(redrive["maxReceiveCount"])}}}'
        )
    url: str = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn: str = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def _queue_attributes(props: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in props.items():
        if isinstance(value, dict):
            continue
        out[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


@dataclass(frozen=True)
class SchedulerResources:
    group: str
    role_arn: str


def create_scheduler_resources(scheduler: Any, iam: Any, *, prefix: str = "graphflow") -> SchedulerResources:
    """Create the template's ``ScheduleGroup`` and the role the scheduler assumes (``TimerSchedulerRole``; the local stack uses it for triggers too).

    The role's trust policy comes from the template; its permissions are not enforced by moto.
    """
    group = f"{prefix}-timers"
    scheduler.create_schedule_group(Name=group)
    trust = resource("TimerSchedulerRole")["AssumeRolePolicyDocument"]
    role = iam.create_role(RoleName=f"{prefix}-scheduler", AssumeRolePolicyDocument=json.dumps(trust))
    return SchedulerResources(group=group, role_arn=str(role["Role"]["Arn"]))
