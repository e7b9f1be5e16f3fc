"""Automatic call distribution: queues, agents, skills, strategies and the routing engine.

The engine (:class:`AcdEngine`) is pure — commands in, events out — and is wrapped by the
shell's service, API and store modules. Start with docs/routing.md.
"""

from .engine import AcdEngine
from .expressions import SkillExpression, compile_expression
from .model import (
    AgentConfig,
    AgentState,
    CallbackPolicy,
    Channel,
    Diversion,
    EngineConfig,
    InteractionState,
    Member,
    PostCallSurvey,
    PriorityRule,
    QueueConfig,
    RelaxationStep,
    Strategy,
    WaitingMedia,
)
from .persistence import (
    agent_config_from_dict,
    agent_config_to_dict,
    queue_config_from_dict,
    queue_config_to_dict,
)
from .views import AgentSnapshot, InteractionSnapshot, QueueSnapshot, WaitingEntry

__all__ = [
    "AcdEngine",
    "AgentConfig",
    "AgentSnapshot",
    "AgentState",
    "CallbackPolicy",
    "Channel",
    "Diversion",
    "EngineConfig",
    "InteractionSnapshot",
    "InteractionState",
    "Member",
    "PostCallSurvey",
    "PriorityRule",
    "QueueConfig",
    "QueueSnapshot",
    "RelaxationStep",
    "SkillExpression",
    "Strategy",
    "WaitingEntry",
    "WaitingMedia",
    "agent_config_from_dict",
    "agent_config_to_dict",
    "compile_expression",
    "queue_config_from_dict",
    "queue_config_to_dict",
]
