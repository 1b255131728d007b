"""Chat formats of the dataset stage: OpenAI chat JSONL and Harmony (gpt-oss) out, ShareGPT and Alpaca in.

Everything inside the pipeline is OpenAI ``messages``; this module converts at the edges.

Harmony is rendered here, not with the ``openai-harmony`` package: that package downloads its vocabulary
at run time and fails offline. The text layout follows the published renderer (``openai/harmony``
``src/encoding.rs``): a message is ``<|start|>{role}[<|channel|>{channel}]<|message|>{content}<|end|>``;
the system message carries the model identity, the reasoning effort and the valid channels (our ``system``
prompt becomes the ``developer`` message, under ``# Instructions``); assistant answers go to the ``final``
channel and a training target's last assistant message ends with ``<|return|>`` instead of ``<|end|>``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

# Message keys kept by openai_record, in the order they are written.
OPENAI_MESSAGE_KEYS = ("role", "content", "name", "tool_calls", "tool_call_id", "weight")

# Harmony's system message (model identity and meta, not instructions). Fixed, so renders are deterministic:
# no "Current date" line (optional in the format; a date would make the same example differ by day).
HARMONY_IDENTITY = "You are ChatGPT, a large language model trained by OpenAI.\nKnowledge cutoff: 2024-06"
HARMONY_REASONING = "low"
HARMONY_CHANNELS = ("analysis", "commentary", "final")
HARMONY_SYSTEM = (
    f"{HARMONY_IDENTITY}\n\nReasoning: {HARMONY_REASONING}\n\n"
    f"# Valid channels: {', '.join(HARMONY_CHANNELS)}. Channel must be included for every message."
)

# ShareGPT speaker names → OpenAI roles (``observation``/``function``: LLaMA-Factory's tool results).
SHAREGPT_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "tool": "tool",
    "observation": "tool",
    "function": "tool",
}
OPENAI_ROLES = ("system", "developer", "user", "assistant", "tool")


# ---------------------------------------------------------------- OpenAI chat JSONL


def openai_record(messages: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``{"messages": [...]}`` with known keys only; ``weight`` is kept on assistant turns, dropped elsewhere."""
    out = []
    for m in messages:
        msg = {k: m[k] for k in OPENAI_MESSAGE_KEYS if k in m and m[k] is not None}
        if msg.get("role") != "assistant":
            msg.pop("weight", None)
        out.append(msg)
    return {"messages": out}


def dumps_line(record: Mapping[str, Any]) -> str:
    """One compact JSON line (sorted keys, UTF-8 text; U+2028/U+2029 escaped so ``str.splitlines`` readers
    do not break a record in two)."""
    text = json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def write_jsonl(path: str | Path, records: Iterable[Mapping[str, Any]]) -> int:
    """Write one JSON object per line (``\\n`` endings, no blank lines), atomically: temp file then rename.

    Returns the number of records written.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    n = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            for rec in records:
                f.write(dumps_line(rec))
                f.write("\n")
                n += 1
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Records of a JSONL file (split on ``\\n`` only; blank lines skipped)."""
    with open(path, "rb") as f:
        for raw in f:
            line = raw.decode("utf-8").strip()
            if line:
                yield json.loads(line)


# ---------------------------------------------------------------- Harmony (gpt-oss)


def _text(content: Any) -> str:
    """Message content as text: strings as-is, OpenAI content parts joined, None as empty."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
    raise ValueError(f"message content must be a string or a list of text parts, got {type(content).__name__}")


def _harmony_tool_calls(m: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Assistant tool calls → Harmony commentary messages addressed to ``functions.<name>``."""
    out = []
    for call in m.get("tool_calls") or []:
        fn = call.get("function") or {}
        if not fn.get("name"):
            raise ValueError(f"tool call {call!r} has no function name")
        args = fn.get("arguments", "{}")
        out.append(
            {
                "role": "assistant",
                "recipient": f"functions.{fn['name']}",
                "channel": "commentary",
                "content_type": "<|constrain|>json",
                "content": args if isinstance(args, str) else json.dumps(args, sort_keys=True),
            }
        )
    return out


def harmony_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI messages → Harmony messages: the standard system message first, our system/developer prompts as
    ``developer`` ``# Instructions``, assistant answers on the ``final`` channel (``weight`` kept)."""
    out: list[dict[str, Any]] = [{"role": "system", "content": HARMONY_SYSTEM}]
    tool_names: dict[str, str] = {}
    for m in messages:
        role = m.get("role")
        if role in ("system", "developer"):
            out.append({"role": "developer", "content": f"# Instructions\n\n{_text(m.get('content'))}"})
        elif role == "user":
            out.append({"role": "user", "content": _text(m.get("content"))})
        elif role == "assistant":
            if m.get("content") is not None or not m.get("tool_calls"):
                msg: dict[str, Any] = {"role": "assistant", "channel": "final", "content": _text(m.get("content"))}
                if "weight" in m:
                    msg["weight"] = m["weight"]
                out.append(msg)
            for call_msg, call in zip(_harmony_tool_calls(m), m.get("tool_calls") or [], strict=True):
                tool_names[str(call.get("id", ""))] = call_msg["recipient"]
                out.append(call_msg)
        elif role == "tool":
            name = m.get("name") or tool_names.get(str(m.get("tool_call_id", "")))
            if not name:
                raise ValueError("a tool message needs a name or a tool_call_id that matches an earlier tool call")
            author = name if str(name).startswith("functions.") else f"functions.{name}"
            out.append(
                {
                    "role": "tool",
                    "name": author,
                    "recipient": "assistant",
                    "channel": "commentary",
                    "content": _text(m.get("content")),
                }
            )
        else:
            raise ValueError(f"unknown role {role!r}: expected one of {', '.join(OPENAI_ROLES)}")
    return out


def _render_harmony_message(m: Mapping[str, Any], end: str) -> str:
    """``<|start|>{author}[ to={recipient}][<|channel|>{channel}][ {content_type}]<|message|>{content}{end}``."""
    author = m["name"] if m["role"] == "tool" else m["role"]
    header = author
    if m.get("recipient"):
        header += f" to={m['recipient']}"
    if m.get("channel"):
        header += f"<|channel|>{m['channel']}"
    if m.get("content_type"):
        header += f" {m['content_type']}"
    return f"<|start|>{header}<|message|>{m['content']}{end}"


def render_harmony(messages: Sequence[Mapping[str, Any]]) -> str:
    """The Harmony training text of an OpenAI conversation: the last message, when it is an assistant answer
    (the training target), ends with ``<|return|>``; tool calls end with ``<|call|>``; all else ``<|end|>``."""
    hm = harmony_messages(messages)
    parts = []
    for i, m in enumerate(hm):
        if m["role"] == "assistant" and m.get("recipient"):
            end = "<|call|>"
        elif m["role"] == "assistant" and m.get("channel") == "final" and i == len(hm) - 1:
            end = "<|return|>"
        else:
            end = "<|end|>"
        parts.append(_render_harmony_message(m, end))
    return "".join(parts)


def harmony_record(messages: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``{"messages": harmony messages, "text": rendered training text}`` (structured and flat forms)."""
    return {"messages": harmony_messages(messages), "text": render_harmony(messages)}


# ---------------------------------------------------------------- importers


def _require_str(obj: Mapping[str, Any], key: str, where: str) -> str:
    if key not in obj or obj[key] is None:
        raise ValueError(f"{where} has no {key!r} field")
    value = obj[key]
    if not isinstance(value, str):
        raise ValueError(f"{where}: {key!r} must be a string, got {type(value).__name__}")
    return value


def from_sharegpt(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    """ShareGPT record → OpenAI messages.

    Accepts ``{"conversations": [{"from": "human"|"gpt"|..., "value": str}], "system"?: str}`` and the
    ``{"messages": [{"role": ..., "content": ...}]}`` variant; ``weight`` on assistant turns is kept.
    """
    if not isinstance(obj, Mapping):
        raise ValueError(f"a ShareGPT record must be a JSON object, got {type(obj).__name__}")
    key = "conversations" if "conversations" in obj else "messages" if "messages" in obj else None
    if key is None:
        raise ValueError(f"not a ShareGPT record: no 'conversations' (or 'messages') list; keys are {sorted(obj)}")
    turns = obj[key]
    if not isinstance(turns, list) or not turns:
        raise ValueError(f"ShareGPT {key!r} must be a non-empty list")
    messages: list[dict[str, Any]] = []
    if obj.get("system"):
        messages.append({"role": "system", "content": _require_str(obj, "system", "ShareGPT record")})
    for i, turn in enumerate(turns, 1):
        where = f"ShareGPT turn {i}"
        if not isinstance(turn, Mapping):
            raise ValueError(f"{where} must be an object, got {type(turn).__name__}")
        speaker_key, text_key = ("from", "value") if "from" in turn else ("role", "content")
        speaker = turn.get(speaker_key)
        if speaker is None:
            raise ValueError(f"{where} has no 'from' (or 'role') field")
        role = SHAREGPT_ROLES.get(str(speaker).lower())
        if role is None:
            raise ValueError(f"{where} has unknown speaker {speaker!r}: expected one of {', '.join(SHAREGPT_ROLES)}")
        msg: dict[str, Any] = {"role": role, "content": _require_str(turn, text_key, where)}
        if role == "assistant" and "weight" in turn:
            msg["weight"] = turn["weight"]
        messages.append(msg)
    return messages


def from_alpaca(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Alpaca record ``{"instruction", "input"?, "output", "system"?, "history"?}`` → OpenAI messages.

    The user turn is the instruction, then a blank line and the input when there is one; ``history``
    (LLaMA-Factory: ``[[instruction, response], ...]``) becomes earlier turns.
    """
    if not isinstance(obj, Mapping):
        raise ValueError(f"an Alpaca record must be a JSON object, got {type(obj).__name__}")
    instruction = _require_str(obj, "instruction", "Alpaca record")
    output = _require_str(obj, "output", "Alpaca record")
    extra = obj.get("input") or ""
    if not isinstance(extra, str):
        raise ValueError(f"Alpaca record: 'input' must be a string, got {type(extra).__name__}")
    messages: list[dict[str, Any]] = []
    if obj.get("system"):
        messages.append({"role": "system", "content": _require_str(obj, "system", "Alpaca record")})
    for i, pair in enumerate(obj.get("history") or [], 1):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise ValueError(f"Alpaca record: history entry {i} must be [instruction, response] strings")
        messages += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
    user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    return [*messages, {"role": "user", "content": user}, {"role": "assistant", "content": output}]
