"""The Switchboard Python client: typed async/sync clients, ``Reply`` and ``SwitchboardError``."""

from switchboard_client.client import AsyncClient, Client, event_of, system, user
from switchboard_client.errors import FieldViolation, SwitchboardError
from switchboard_client.reply import Event, Reply, ToolCallState

__all__ = ["AsyncClient", "Client", "Event", "FieldViolation", "Reply", "SwitchboardError",
           "ToolCallState", "event_of", "system", "user"]
