"""Thin adapters that drop Trustee episodes into existing RL trainers.

Each trainer lives in its own module and its own optional extra (their torch and vLLM pins
conflict, so install one per environment):

| module | trainer | extra |
|---|---|---|
| :mod:`trustee_env.integrations.trl` | TRL ``GRPOTrainer(rollout_func=...)`` | ``trustee-env[trl]`` |
| :mod:`trustee_env.integrations.verl` | verl ``AgentLoopBase`` | ``trustee-env[verl]`` |
| :mod:`trustee_env.integrations.skyrl` | SkyRL ``BaseTextEnv`` | ``trustee-env[skyrl]`` |

:mod:`trustee_env.integrations.tasks` (no trainer needed) turns a task bank into dataset rows
whose prompt identifies the task, so every copy of a prompt in a GRPO group plays the same task
on every process. Importing this package imports no trainer.
"""

__all__: list[str] = []
