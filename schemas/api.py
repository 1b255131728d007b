"""The Serve API's request and response models (pydantic): OpenAI-compatible chat/completions, /predict, /validate.

Requests forbid unknown fields only where a typo would silently change the answer (our own endpoints); the
OpenAI-compatible ones accept and ignore the fields of OpenAI's API we do not implement (``n`` > 1 and
``logprobs`` are refused with 422 rather than ignored), so stock clients work unchanged.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Open(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- OpenAI-compatible
class ChatMessage(_Open):
    role: Literal["system", "user", "assistant", "developer"]
    content: str | list[dict[str, Any]] | None = ""

    def text(self) -> str:
        """The message's text; list content keeps its ``text`` parts (images and audio are refused)."""
        if isinstance(self.content, list):
            parts = []
            for p in self.content:
                if p.get("type") != "text":
                    raise ValueError(f"content part type {p.get('type')!r} is not supported: send text parts only")
                parts.append(str(p.get("text", "")))
            return "".join(parts)
        return self.content or ""


class JsonSchemaFormat(_Open):
    name: str = "answer"
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Open):
    type: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> ResponseFormat:
        if self.type == "json_schema" and (self.json_schema is None or not self.json_schema.schema_):
            raise ValueError("response_format type json_schema needs json_schema.schema (a JSON Schema object)")
        return self


class StreamOptions(_Open):
    include_usage: bool = False


class _Sampling(_Open):
    model: str
    max_tokens: int | None = Field(None, gt=0)
    max_completion_tokens: int | None = Field(None, gt=0)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1, le=1)  # one choice per request
    user: str | None = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, v: str | list[str] | None) -> list[str] | None:
        stops = [v] if isinstance(v, str) else v
        if stops is not None and (len(stops) > 4 or any(not s for s in stops)):
            raise ValueError("stop: up to 4 non-empty strings")
        return stops

    def budget(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    response_format: ResponseFormat | None = None
    logprobs: bool | None = None

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, v: bool | None) -> bool | None:
        if v:
            raise ValueError("logprobs are not supported")
        return v


class CompletionRequest(_Sampling):
    prompt: str = Field(min_length=1)
    echo: bool = False


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "tfpredict"
    task: str = "chat"  # the route whose default temperature applies


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# ---------------------------------------------------------------- /predict and /validate
class Change(_Closed):
    address: str = Field(min_length=1)
    actions: list[Literal["create", "update", "delete", "read", "no-op"]] = Field(min_length=1)


class PredictRequest(_Closed):
    terraform_code: str | None = None  # one file's worth of HCL (served as main.tf)
    files: dict[str, str] | None = None  # {repo-relative path: content}
    root: str = "."  # the root module's directory within ``files``
    model: str | None = None  # a served model name; default: the app's plan model
    max_tokens: int | None = Field(None, gt=0)
    temperature: float = Field(0.0, ge=0, le=2)  # 0: greedy, what evaluation measured
    constrained: bool = True

    @model_validator(mode="after")
    def _some_code(self) -> PredictRequest:
        if (self.terraform_code is None) == (self.files is None):
            raise ValueError("give exactly one of terraform_code (text) or files ({path: content})")
        if self.terraform_code is not None and not self.terraform_code.strip():
            raise ValueError("terraform_code is empty: send the HCL of a root module")
        if self.files is not None:
            if not self.files:
                raise ValueError("files is empty: send {path: content} of a root module's .tf files")
            if not any(p.endswith((".tf", ".tf.json")) for p in self.files):
                raise ValueError("files has no .tf or .tf.json file")
        return self

    def file_list(self) -> list[dict[str, str]]:
        if self.terraform_code is not None:
            return [{"path": "main.tf", "content": self.terraform_code}]
        return [{"path": p, "content": c} for p, c in sorted((self.files or {}).items())]


class PredictResponse(BaseModel):
    model: str
    resource_changes: list[dict[str, Any]] | None  # None when the answer did not parse
    raw: str
    valid: bool
    status: str  # ok | closed (cut at the budget, closed after its last change) | invalid | cut
    parse_error: str | None = None
    finish_reason: str
    latency_s: float
    usage: Usage


class ValidateRequest(PredictRequest):
    expected: list[Change] | None = None  # None: planned here by terraform in the sandbox


class ValidateResponse(BaseModel):
    precision: float
    recall: float
    f1: float
    address_f1: float
    exact_match: bool
    expected: list[dict[str, Any]]
    expected_source: Literal["request", "terraform"]
    prediction: PredictResponse
