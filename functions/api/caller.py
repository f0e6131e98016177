"""The authenticated caller of the current HTTP API request: the owner the service scopes to."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from functions.shared.identity import principal


def owner(router: APIGatewayHttpRouter) -> str:
    """The caller's principal (:mod:`functions.shared.identity`); 401 ``unauthenticated`` without one."""
    return principal(router.current_event.raw_event)
