"""Chat-format training data (`{"messages": [...]}` per line, OpenAI's format since 2023): the
format check, and the plain transcript that chat examples are read as when no model's chat
template renders them.

The check follows OpenAI's format checker (the cookbook's "data preparation and analysis for chat
model fine-tuning"): every message an object with a known role and non-empty text, no unknown keys,
`weight` 0 or 1 and only on assistant messages, at least one assistant message to learn from.
Tools and function calls are refused by name: tunelab trains text.

The transcript (`transcript`) is tunelab's one documented fallback template, used
- by the classifier method, always: the prompt of a chat example is the conversation up to its last
  learnt assistant message, rendered as a transcript, and the label is that message's text;
- by the lm method on a base model whose tokenizer has no chat template.
Each message is `<Role>:\\n<content>\\n\\n` (Role: System, User, Assistant); the generation prompt
is `Assistant:\\n`. The same function renders training rows, `evaluate`'s test rows and the
messages of `/v1/chat/completions`, so a model sees one format throughout.
"""

from __future__ import annotations

from typing import Any

CHAT_ROLES = ("system", "user", "assistant")
SYSTEM_ALIASES = ("developer",)
"""OpenAI's newer name for the system role: read as "system" in training files, as chat completions
reads it, so a model trains on the instructions it is later served with."""
MESSAGE_KEYS = ("role", "content", "name", "weight")
ROLE_NAMES = {"system": "System", "user": "User", "assistant": "Assistant"}
GENERATION_PROMPT = "Assistant:\n"


def validate_messages(messages: Any) -> list[str]:
    """Problems with one chat example's `messages` value (empty list when it is valid), each
    naming the field (`messages[2].weight`) and what it should be."""
    if not isinstance(messages, list) or not messages:
        return ["field `messages` must be a non-empty list of {role, content} objects"]
    problems = []
    for i, message in enumerate(messages):
        where = f"field `messages[{i}]`"
        if not isinstance(message, dict):
            problems.append(f"{where} must be an object with `role` and `content`, found {type(message).__name__}")
            continue
        role = message.get("role")
        if "role" not in message:
            problems.append(f"{where} has no `role`")
        elif role in ("tool", "function") or "tool_calls" in message or "function_call" in message:
            problems.append(f"{where}: tool and function calls are not supported by tunelab; "
                            "give text messages of the roles system, user and assistant")
            continue
        elif role not in CHAT_ROLES + SYSTEM_ALIASES:
            problems.append(f"{where}.role is {role!r}; expected one of {', '.join(CHAT_ROLES)} (or developer, "
                            "read as system)")
        unknown = [k for k in message if k not in MESSAGE_KEYS]
        if unknown:
            problems.append(f"{where} has unrecognized key(s) {', '.join(f'`{k}`' for k in unknown)}; "
                            f"a message takes {', '.join(MESSAGE_KEYS)}")
        content = _text_of(message.get("content"))
        if "content" not in message:
            problems.append(f"{where} has no `content`")
        elif isinstance(message["content"], list) and content is None:
            problems.append(f"{where}.content: only text parts ({{\"type\": \"text\", \"text\": ...}}) are supported "
                            "by tunelab")
        elif not isinstance(content, str):
            problems.append(f"{where}.content must be text, found {type(content).__name__}")
        elif not content.strip():
            problems.append(f"{where}.content is empty")
        if "name" in message and not isinstance(message["name"], str):
            problems.append(f"{where}.name must be text")
        if "weight" in message:
            weight = message["weight"]
            if role != "assistant":
                problems.append(f"{where}.weight is only allowed on assistant messages")
            elif isinstance(weight, bool) or weight not in (0, 1):
                problems.append(f"{where}.weight must be 0 or 1, got {weight!r}")
    assistants = [m for m in messages if isinstance(m, dict) and m.get("role") == "assistant"]
    if not assistants:
        problems.append("field `messages` has no assistant message to learn from")
    elif all(m.get("weight", 1) == 0 for m in assistants):
        problems.append("field `messages` has no assistant message to learn from: every one has weight 0")
    return problems


TOOL_KEYS = ("tools", "functions")
"""Keys of a chat example that define tools (OpenAI renders them into the prompt it trains on)."""


def validate_example(row: dict) -> list[str]:
    """Problems with one chat example (a row of a chat file): its `messages` (validate_messages) and
    the tool definitions beside them. A template here has no place for tools, so a model trained
    without them would learn its replies as if it had never been given any: refused by name rather
    than dropped with the other extra keys."""
    problems = [f"field `{key}`: tool definitions are not supported by tunelab (the model would be trained "
                "without them); remove the key" for key in TOOL_KEYS if row.get(key)]
    return problems + validate_messages(row.get("messages"))


def learnt(message: dict) -> bool:
    """An assistant message whose tokens the lm method trains on (weight 1, the default)."""
    return message.get("role") == "assistant" and message.get("weight", 1) != 0


def last_reply(messages: list[dict]) -> int:
    """Index of the last learnt assistant message: the reply a classifier learns as the label."""
    return max(i for i, m in enumerate(messages) if learnt(m))


def transcript(messages: list[dict], add_generation_prompt: bool = True) -> str:
    """The fallback template (see the module's docstring)."""
    text = "".join(f"{ROLE_NAMES.get(m['role'], m['role'].title())}:\n{m['content']}\n\n" for m in messages)
    return text + (GENERATION_PROMPT if add_generation_prompt else "")


def clean_messages(messages: list[dict]) -> list[dict]:
    """The keys a template reads (role, content, and name or weight where given), in that order;
    content given as text parts is joined into one text, and a developer message is a system one."""
    return [{k: (_text_of(m[k]) if k == "content" else "system" if k == "role" and m[k] in SYSTEM_ALIASES else m[k])
             for k in MESSAGE_KEYS if k in m} for m in messages]


def _text_of(content: Any) -> Any:
    """Text content as one string: a string as it is, a list of text parts joined; None for a list
    holding anything else (images, audio); any other value unchanged (the check names its type)."""
    if not isinstance(content, list):
        return content
    if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content):
        return None
    return "".join(p["text"] for p in content)
