"""The language-model layer: one async client for every role, its cache and its accounting."""

from trustee_env.llm.cache import ResponseCache
from trustee_env.llm.client import LLMClient, parse_json_output
from trustee_env.llm.usage import RoleUsage, Usage

__all__ = ["LLMClient", "ResponseCache", "RoleUsage", "Usage", "parse_json_output"]
