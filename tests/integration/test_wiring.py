"""functions.shared.wiring on moto: one botocore session, and a client only once a request uses its service."""

from __future__ import annotations

from functions.shared import wiring
from tests.integration.conftest import AwsEnv
from tests.support.tools import LOOP_GRAPH


def test_reading_a_run_makes_only_the_dynamodb_client(aws: AwsEnv) -> None:
    service = wiring.service()
    graph_id = service.create_graph(LOOP_GRAPH).graph_id
    assert wiring._client.cache_info().currsize == 1

    run = service.start_run(graph_id, {"i": 0})
    assert service.get_run(run.run_id).run_id == run.run_id
    assert wiring._client.cache_info().currsize == 2, "starting a run sends its first step"
    assert wiring.session.cache_info().misses == 1


def test_all_clients_come_from_one_session(aws: AwsEnv) -> None:
    session = wiring.session()
    dynamodb, sqs = wiring.client("dynamodb"), wiring.client("sqs")
    assert wiring.session() is session
    assert wiring.client("dynamodb") is dynamodb
    assert dynamodb.meta.region_name == sqs.meta.region_name == session.get_config_variable("region")
    wiring.reset()
    assert wiring.session() is not session
