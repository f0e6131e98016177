"""The local stack: moto server, a gateway for the HTTP and WebSocket APIs, and an SQS poller."""
