"""The Switchboard Python client: typed async/sync clients and the ``Reply`` aggregator."""

from switchboard_client.client import AsyncClient, Client, event_of, system, user
from switchboard_client.reply import Event, Reply, ToolCallState

__all__ = ["AsyncClient", "Client", "Event", "Reply", "ToolCallState", "event_of", "system",
           "user"]
