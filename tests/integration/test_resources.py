"""local.resources builds the template's queues on moto, parking queue included."""

from __future__ import annotations

import json

from tests.integration.conftest import AwsEnv


def test_the_dlq_redrives_to_a_fifo_parking_queue_kept_14_days(aws: AwsEnv) -> None:
    r = aws.resources
    dlq = aws.sqs.get_queue_attributes(QueueUrl=r.dlq_url, AttributeNames=["All"])["Attributes"]
    assert json.loads(dlq["RedrivePolicy"]) == {"deadLetterTargetArn": r.parking_arn, "maxReceiveCount": 10}
    parking = aws.sqs.get_queue_attributes(QueueUrl=r.parking_url, AttributeNames=["All"])["Attributes"]
    assert parking["FifoQueue"] == "true"
    assert parking["MessageRetentionPeriod"] == "1209600"
    assert "RedrivePolicy" not in parking
    step = aws.sqs.get_queue_attributes(QueueUrl=r.queue_url, AttributeNames=["RedrivePolicy"])["Attributes"]
    assert json.loads(step["RedrivePolicy"])["deadLetterTargetArn"] == r.dlq_arn
