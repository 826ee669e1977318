"""The four simulator roles. Each renders its template, calls the LM and returns a schema object.

No role knows about Gymnasium; each takes what it needs as arguments and keeps no hidden state.
"""

from trustee_env.roles.judge import Judge, JudgeOutput, Verdict
from trustee_env.roles.task_generator import TaskDraft, TaskGenerator
from trustee_env.roles.tool_simulator import ToolOutcome, ToolSimulator
from trustee_env.roles.user_simulator import UserSimulator, UserTurn

__all__ = [
    "Judge",
    "JudgeOutput",
    "TaskDraft",
    "TaskGenerator",
    "ToolOutcome",
    "ToolSimulator",
    "UserSimulator",
    "UserTurn",
    "Verdict",
]
