"""LLM judges for open-ended QA (MoVid-Bench and Swing protocol): correct/incorrect plus a 0-5 score.

The protocol (MotionLLM's MoVid-Bench, followed by LLaMo): a judge model reads the question, the reference
answer and the model's prediction and returns whether the prediction is correct and a 0-5 score of how well
it matches; a benchmark reports the share judged correct ("accuracy") and the mean score. The paper used a GPT
model; any judge can be plugged in here:

* `HTTPJudge`: any OpenAI-compatible `/v1/chat/completions` endpoint (OpenAI, vLLM, llama.cpp server, TGI...).
  Configured from the environment: `LLAMO_JUDGE_URL` (base URL, with or without `/v1`, or the full
  `/chat/completions` URL), `LLAMO_JUDGE_API_KEY` (optional; sent as a Bearer token) and
  `LLAMO_JUDGE_MODEL` (the `model` field; default `gpt-4o-mini`). stdlib `urllib` only.
* `LocalJudge`: any transformers causal LM with its tokenizer, greedy decoding.

Both send `JUDGE_SYSTEM_PROMPT` as the system message and `JUDGE_USER_TEMPLATE` filled with the item as the
user message, and read the reply with `parse_judgement`. Judge numbers depend on the judge model: report which
one was used (the harness writes it into the report) and compare only numbers from the same judge.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from typing import Protocol, runtime_checkable

__all__ = [
    "JUDGE_SYSTEM_PROMPT",
    "JUDGE_USER_TEMPLATE",
    "HTTPJudge",
    "Judge",
    "JudgeResult",
    "LocalJudge",
    "build_judge_messages",
    "judge_from_spec",
    "parse_judgement",
]

# The judge prompt. Inputs: {question}, {reference}, {prediction}. Output: one JSON object
# {"correct": "yes" | "no", "score": <integer 0-5>}. The system message fixes the criteria (meaning over
# wording, no credit for contradictions or hallucinated details, score scale); the user message carries the item
# and restates the output format, which small judges need.
JUDGE_SYSTEM_PROMPT = (
    "You evaluate answers to questions about human motion (body movements, actions, their order, direction, "
    "body parts, counts and reasons). You are given a question, the reference (correct) answer and a predicted "
    "answer. Decide whether the prediction is correct: it must convey the same meaning as the reference; "
    "different wording, synonyms and extra harmless detail are fine, but a prediction that contradicts the "
    "reference, misses its key point or adds wrong details is incorrect. Then rate how well the prediction "
    "matches the reference with an integer score from 0 (completely wrong or no answer) to 5 (fully correct and "
    "complete). Reply with a single JSON object and nothing else, for example: "
    '{"correct": "yes", "score": 4}'
)
JUDGE_USER_TEMPLATE = (
    "Question: {question}\n"
    "Reference answer: {reference}\n"
    "Predicted answer: {prediction}\n"
    'Reply only with JSON: {{"correct": "yes" or "no", "score": 0-5}}'
)


@dataclass
class JudgeResult:
    """One verdict. `parsed` is False when the judge's reply could not be read (then correct=False, score=0)."""

    correct: bool
    score: float
    raw: str = ""
    parsed: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


@runtime_checkable
class Judge(Protocol):
    """Anything with `judge(question, reference, prediction) -> JudgeResult` and a `name` for reports."""

    name: str

    def judge(self, question: str, reference: str, prediction: str) -> JudgeResult: ...


def build_judge_messages(question: str, reference: str, prediction: str) -> list[dict]:
    return [
        {"role": "system", "content": JUDGE_SYSTEM_PROMPT},
        {
            "role": "user",
            "content": JUDGE_USER_TEMPLATE.format(
                question=question.strip(),
                reference=str(reference).strip(),
                prediction=(prediction or "").strip(),
            ),
        },
    ]


_YES = {"yes", "true", "correct", "right", "1", "y"}
_NO = {"no", "false", "incorrect", "wrong", "0", "n"}
_CORRECT_KEYS = (
    "correct",
    "pred",
    "prediction",
    "is_correct",
    "verdict",
    "judgement",
    "judgment",
    "answer",
)


def _as_bool(value) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return bool(value)
    if isinstance(value, str):
        v = value.strip().strip("'\"").lower()
        if v in _YES:
            return True
        if v in _NO:
            return False
    return None


def _clamp_score(value) -> float | None:
    try:
        score = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(score):
        return None
    return float(min(5.0, max(0.0, score)))


def parse_judgement(reply: str) -> JudgeResult:
    """Read a judge reply: a JSON object (possibly in a code fence, with single quotes or surrounding text), else
    `correct: yes ... score: 4`-style text. The score is clamped to [0, 5]. Unreadable -> parsed=False,
    correct=False, score=0. A readable verdict without a score gets score 5 (correct) or 0 (incorrect)."""
    text = reply or ""
    correct, score = None, None
    for match in re.finditer(r"\{[^{}]*\}", text, flags=re.DOTALL):
        blob = match.group(0)
        obj = None
        for candidate in (blob, blob.replace("'", '"')):
            try:
                obj = json.loads(candidate)
                break
            except json.JSONDecodeError:
                continue
        if not isinstance(obj, dict):
            continue
        lowered = {str(k).lower(): v for k, v in obj.items()}
        for key in _CORRECT_KEYS:
            if key in lowered and _as_bool(lowered[key]) is not None:
                correct = _as_bool(lowered[key])
                break
        if "score" in lowered:
            score = _clamp_score(lowered["score"])
        if correct is not None or score is not None:
            break
    if correct is None:
        m = re.search(
            r"\b(?:correct|pred|verdict|judge?ment)\b[\"']?\s*[:=]\s*[\"']?(yes|no|true|false|correct|incorrect)",
            text,
            flags=re.IGNORECASE,
        )
        if m:
            correct = _as_bool(m.group(1))
    if score is None:
        m = re.search(
            r"\bscore\b[\"']?\s*[:=]?\s*[\"']?(\d+(?:\.\d+)?)",
            text,
            flags=re.IGNORECASE,
        )
        if m:
            score = _clamp_score(m.group(1))
    if correct is None:
        m = re.match(r"\s*[\"']?(yes|no|correct|incorrect)\b", text, flags=re.IGNORECASE)
        if m:
            correct = _as_bool(m.group(1))
    if correct is None and score is None:
        return JudgeResult(correct=False, score=0.0, raw=text, parsed=False)
    if correct is None:
        correct = score >= 3.0  # score-only replies: the upper half of the scale counts as correct
    if score is None:
        score = 5.0 if correct else 0.0
    return JudgeResult(correct=bool(correct), score=score, raw=text, parsed=True)


class HTTPJudge:
    """An OpenAI-compatible chat-completions endpoint as judge (stdlib `urllib`, retries, timeout).

    Args:
        url: base URL (`http://host:8000`, `https://api.openai.com/v1`) or the full `.../chat/completions` URL.
            Default: `$LLAMO_JUDGE_URL`.
        api_key: sent as `Authorization: Bearer ...` when set. Default: `$LLAMO_JUDGE_API_KEY`.
        model: the request's `model`. Default: `$LLAMO_JUDGE_MODEL`, else `gpt-4o-mini`.
        timeout: seconds per request. max_retries: extra attempts after a network error, HTTP 429 or 5xx, with
        exponential backoff from `backoff` seconds. max_tokens: reply budget.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        model: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff: float = 1.0,
        max_tokens: int = 64,
        temperature: float = 0.0,
    ):
        url = url or os.environ.get("LLAMO_JUDGE_URL")
        if not url:
            raise ValueError("HTTPJudge needs a URL: pass url= or set LLAMO_JUDGE_URL.")
        self.url = self.endpoint(url)
        self.api_key = api_key if api_key is not None else os.environ.get("LLAMO_JUDGE_API_KEY")
        self.model = model or os.environ.get("LLAMO_JUDGE_MODEL") or "gpt-4o-mini"
        self.timeout, self.max_retries, self.backoff = timeout, max_retries, backoff
        self.max_tokens, self.temperature = max_tokens, temperature
        self.name = f"http:{self.model}"

    @staticmethod
    def endpoint(url: str) -> str:
        url = url.rstrip("/")
        if url.endswith("/chat/completions"):
            return url
        if url.endswith("/v1"):
            return url + "/chat/completions"
        return url + "/v1/chat/completions"

    def _post(self, payload: dict) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(payload).encode("utf-8")
        last_error = None
        for attempt in range(self.max_retries + 1):
            request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read().decode("utf-8"))
            except urllib.error.HTTPError as err:
                last_error = err
                if err.code != 429 and err.code < 500:
                    body = err.read().decode("utf-8", "replace")[:500]
                    raise RuntimeError(f"Judge endpoint {self.url} answered HTTP {err.code}: {body}") from err
            except (
                urllib.error.URLError,
                TimeoutError,
                ConnectionError,
                json.JSONDecodeError,
            ) as err:
                last_error = err
            if attempt < self.max_retries:
                time.sleep(self.backoff * (2**attempt))
        raise RuntimeError(f"Judge endpoint {self.url} failed after {self.max_retries + 1} attempts: {last_error}")

    def complete(self, messages: list[dict]) -> str:
        payload = {
            "model": self.model,
            "messages": messages,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        response = self._post(payload)
        try:
            return response["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError) as err:
            raise RuntimeError(f"Unexpected judge response from {self.url}: {str(response)[:300]}") from err

    def judge(self, question: str, reference: str, prediction: str) -> JudgeResult:
        return parse_judgement(self.complete(build_judge_messages(question, reference, prediction)))


class LocalJudge:
    """A local transformers causal LM as judge: chat template if the tokenizer has one, greedy decoding.

    Args:
        model: a causal LM (`AutoModelForCausalLM`). tokenizer: its tokenizer.
        max_new_tokens: reply budget. name: for reports (default: the model's `name_or_path`).
        generate_kwargs: extra `model.generate` arguments (e.g. a `prefix_allowed_tokens_fn`).
    """

    def __init__(
        self,
        model,
        tokenizer,
        max_new_tokens: int = 48,
        name: str | None = None,
        **generate_kwargs,
    ):
        self.model, self.tokenizer = model, tokenizer
        self.max_new_tokens = max_new_tokens
        self.generate_kwargs = generate_kwargs
        self.name = name or f"local:{getattr(model, 'name_or_path', '') or type(model).__name__}"

    @classmethod
    def from_pretrained(cls, path: str, gguf_file: str | None = None, dtype=None, **kwargs) -> LocalJudge:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        extra = {"gguf_file": gguf_file} if gguf_file else {}
        tokenizer = AutoTokenizer.from_pretrained(path, **extra)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32, **extra).eval()
        return cls(
            model,
            tokenizer,
            name=f"local:{os.path.basename(os.path.normpath(path))}",
            **kwargs,
        )

    def prompt_ids(self, question: str, reference: str, prediction: str):
        messages = build_judge_messages(question, reference, prediction)
        if getattr(self.tokenizer, "chat_template", None):
            encoded = self.tokenizer.apply_chat_template(
                messages,
                add_generation_prompt=True,
                tokenize=True,
                return_dict=True,
                return_tensors="pt",
            )
            return encoded["input_ids"], encoded.get("attention_mask")
        text = "\n\n".join(m["content"] for m in messages) + "\n\nJSON:"
        encoded = self.tokenizer(text, return_tensors="pt")
        return encoded["input_ids"], encoded.get("attention_mask")

    def judge(self, question: str, reference: str, prediction: str) -> JudgeResult:
        import torch

        input_ids, attention_mask = self.prompt_ids(question, reference, prediction)
        device = getattr(self.model, "device", None)
        if device is not None:
            input_ids = input_ids.to(device)
            attention_mask = attention_mask.to(device) if attention_mask is not None else None
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        with torch.no_grad():
            output = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=pad_id,
                **self.generate_kwargs,
            )
        reply = self.tokenizer.decode(output[0, input_ids.shape[1] :], skip_special_tokens=True)
        return parse_judgement(reply)


def judge_from_spec(spec: str | None):
    """`http` -> `HTTPJudge()` from the environment; `local:PATH` or `local:PATH::GGUF_FILE` -> `LocalJudge`;
    None -> None."""
    if not spec:
        return None
    if spec == "http":
        return HTTPJudge()
    if spec.startswith("local:"):
        path = spec[len("local:") :]
        gguf = None
        if "::" in path:
            path, gguf = path.split("::", 1)
        elif os.path.isfile(path) and path.endswith(".gguf"):
            path, gguf = os.path.dirname(path) or ".", os.path.basename(path)
        return LocalJudge.from_pretrained(path, gguf_file=gguf)
    raise ValueError(f"Unknown judge {spec!r}: use 'http' (LLAMO_JUDGE_URL...) or 'local:PATH'.")
