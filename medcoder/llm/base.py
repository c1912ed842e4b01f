"""The one model interface every agent uses, and the typed records each call leaves behind.

`chat` gives text or a schema-validated object; `choose` ranks options with probabilities.
Every call produces a `CallRecord` (messages, options, answer, log-probabilities, token
counts, prefix reuse, latency, model sha256, sampling settings) that observers receive,
which is how calls reach the audit trail and how a run can be replayed without a model.
"""

from __future__ import annotations

import abc
import hashlib
import json
import logging
import math
import string
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Generic, Sequence, TypeVar

from pydantic import BaseModel, ValidationError

from medcoder.errors import MedcoderError

logger = logging.getLogger(__name__)

T = TypeVar("T", bound=BaseModel)
Message = dict[str, str]
LABELS = string.ascii_uppercase  # single-token option labels in every tokenizer we ship


class ModelOutputError(MedcoderError):
    """The model returned something that cannot be used (not JSON, wrong schema, no option)."""

    def __init__(self, message: str, text: str = "", stats: "CallStats | None" = None) -> None:
        super().__init__(message)
        self.text = text  # what the model said, for callers that can salvage part of it
        self.stats = stats
        self.records: list[CallRecord] = []  # the failed call's record (node-bound handles credit it)


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend can do, so callers pick the fast path when there is one."""

    logprobs: bool = False
    grammar: bool = False
    prefix_cache: bool = False
    batched_score: bool = False  # `score` decodes all continuations together over one shared prefix


@dataclass(frozen=True, slots=True)
class Option:
    """One thing to choose among: a code with its label, or any key with a description."""

    key: str
    label: str


@dataclass(slots=True)
class Choice:
    key: str
    label: str
    probability: float
    logprob: float | None = None


@dataclass(frozen=True, slots=True)
class Continuation:
    """What `score` judges: the log-probability of `text` after the shared context and then `prompt`.

    `prompt` (for example "Code: E11.9 ...\nDocumented:") is said but not scored; `text` (" yes") is scored.
    """

    text: str
    prompt: str = ""


@dataclass(slots=True)
class CallStats:
    """Accounting for one model call."""

    prompt_tokens: int = 0
    cached_tokens: int = 0  # taken from the reused prefix, not evaluated again
    completion_tokens: int = 0
    latency_s: float = 0.0
    model: str = ""
    model_sha256: str = ""
    backend: str = ""
    sampling: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class CallRecord:
    """Everything about one call: the request, the answer and its accounting."""

    kind: str  # "chat", "choose" or "score"
    request_key: str
    messages: list[Message]
    stats: CallStats
    options: list[dict[str, str]] | None = None
    schema: dict[str, Any] | None = None
    text: str = ""
    parsed: dict[str, Any] | None = None
    choices: list[dict[str, Any]] | None = None
    method: str = ""  # how `choose` ranked: logprobs or grammar
    label_mass: float | None = None  # probability the model put on any option label at all
    error: str | None = None  # the call's answer could not be used (recorded all the same)
    continuations: list[dict[str, str]] | None = None  # `score`: what was judged, in order
    scores: list[float] | None = None  # `score`: the log-probability of each continuation

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class ChatResult(Generic[T]):
    text: str
    parsed: T | None
    record: CallRecord


@dataclass(slots=True)
class ChooseResult:
    """Options ranked best first with probabilities that sum to about 1 over the options."""

    choices: list[Choice]
    record: CallRecord
    records: list[CallRecord] = field(default_factory=list)  # every call made, when more than one (rounds)

    @property
    def best(self) -> Choice:
        return self.choices[0]


@dataclass(slots=True)
class ScoreResult:
    """The log-probability of each continuation (same order as asked) and the call's record."""

    logprobs: list[float]
    record: CallRecord


@dataclass(slots=True)
class JudgeResult:
    """Yes/no judgements: log-odds log P(yes) - log P(no) per question, and P(yes) renormalised over the two."""

    log_odds: list[float]
    p_yes: list[float]
    record: CallRecord


CallObserver = Callable[[CallRecord], None]


def request_key(
    kind: str,
    messages: Sequence[Message],
    options: Sequence[Option] | None = None,
    schema: dict[str, Any] | None = None,
    k: int | None = None,
    continuations: Sequence[Continuation] | None = None,
) -> str:
    """A digest of what was asked, the same across backends: the key a replay looks up."""
    payload: dict[str, Any] = {
        "kind": kind,
        "messages": list(messages),
        "schema": schema,
        "k": k,
        "options": [[o.key, o.label] for o in options] if options is not None else None,
    }
    if continuations is not None:
        payload["continuations"] = [[c.prompt, c.text] for c in continuations]
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def choice_messages(
    context: str | Sequence[Message], options: Sequence[Option], instruction: str | None = None
) -> list[Message]:
    """The prompt for `choose`: what is shared first (instructions, context), the options last."""
    messages = as_messages(context)
    lines = "\n".join(f"{LABELS[i]}. {o.label}" for i, o in enumerate(options))
    ask = instruction or "Answer with the letter of the best option only."
    last = messages[-1]
    last["content"] = f"{last['content']}\n\nOptions:\n{lines}\n\n{ask}"
    return messages


def as_messages(context: str | Sequence[Message]) -> list[Message]:
    """A context given as text is one user message; messages are copied."""
    return [{"role": "user", "content": context}] if isinstance(context, str) else [dict(m) for m in context]


def as_continuations(continuations: Sequence[Continuation | str | tuple[str, str]]) -> list[Continuation]:
    """Accept plain strings (scored whole) or (prompt, text) pairs as well as `Continuation`s."""
    out = []
    for c in continuations:
        if isinstance(c, Continuation):
            out.append(c)
        elif isinstance(c, str):
            out.append(Continuation(c))
        else:
            prompt, text = c
            out.append(Continuation(text, prompt))
    for c in out:
        if not c.text:
            raise MedcoderError("score(): a continuation's scored text is empty")
    return out


def softmax_choices(options: Sequence[Option], logprobs: Sequence[float]) -> tuple[list[Choice], float]:
    """Renormalise label log-probabilities over the options; also return their total mass."""
    top = max(logprobs)
    weights = [math.exp(lp - top) for lp in logprobs]
    total = sum(weights)
    mass = sum(math.exp(lp) for lp in logprobs)
    choices = [Choice(o.key, o.label, w / total, lp) for o, w, lp in zip(options, weights, logprobs)]
    choices.sort(key=lambda c: -c.probability)
    return choices, mass


def validate_output(text: str, schema: type[T]) -> T:
    try:
        return schema.model_validate_json(text)
    except ValidationError as exc:
        raise ModelOutputError(
            f"model output does not match {schema.__name__}: {exc.errors()[:2]}; output was {text[:200]!r}", text
        ) from exc


class LLM(abc.ABC):
    """A model behind one interface: `chat` and `choose`, with observers for every call."""

    name: str = ""
    sha256: str = ""
    backend: str = ""
    capabilities: Capabilities = Capabilities()
    max_options: int = len(LABELS)

    def __init__(self) -> None:
        self.observers: list[CallObserver] = []

    # -- what subclasses implement ---------------------------------------------------
    @abc.abstractmethod
    def _chat(
        self, messages: list[Message], schema: dict[str, Any] | None, max_tokens: int | None, temperature: float | None
    ) -> tuple[str, CallStats]:
        """Generate a reply (constrained to the JSON schema when one is given)."""

    def _choose_logprobs(self, messages: list[Message], options: Sequence[Option]) -> tuple[list[float], CallStats]:
        """Log-probabilities of each option's label as the next token (backends that can)."""
        raise NotImplementedError

    # -- the interface ----------------------------------------------------------------
    def chat(
        self,
        messages: Sequence[Message],
        schema: type[T] | None = None,
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> ChatResult[T]:
        """A reply; with a pydantic `schema` the output is grammar-constrained and validated."""
        msgs = [dict(m) for m in messages]
        json_schema = schema.model_json_schema() if schema is not None else None
        key = request_key("chat", msgs, schema=json_schema)
        start = time.perf_counter()
        error: ModelOutputError | None = None
        try:
            text, stats = self._chat(msgs, json_schema, max_tokens, temperature)
        except ModelOutputError as exc:  # a failed call is still a call: record it, then raise
            text, stats, error = exc.text, exc.stats or CallStats(), exc
        stats.latency_s = time.perf_counter() - start
        parsed = None
        if error is None and schema is not None:
            try:
                parsed = validate_output(text, schema)
            except ModelOutputError as exc:
                error = exc
        record = CallRecord(
            "chat",
            key,
            msgs,
            self._stamp(stats),
            schema=json_schema,
            text=text,
            parsed=parsed.model_dump(mode="json") if parsed is not None else None,
            error=str(error) if error else None,
        )
        self._notify(record)
        if error is not None:
            error.records = [record]
            raise error
        return ChatResult(text, parsed, record)

    def choose(
        self,
        context: str | Sequence[Message],
        options: Sequence[Option | tuple[str, str]],
        k: int = 1,
        instruction: str | None = None,
    ) -> ChooseResult:
        """Rank `options` for the context; returns all of them (best first) with probabilities.

        `k` is how many the caller means to use: with the log-probability path every option
        is scored in one forward pass anyway; the grammar fallback samples `k` times.
        """
        opts = [o if isinstance(o, Option) else Option(*o) for o in options]
        if not opts:
            raise MedcoderError("choose() needs at least one option")
        if len({o.key for o in opts}) != len(opts):
            raise MedcoderError("choose() options must have distinct keys")
        if len(opts) > self.max_options:
            return self._choose_in_rounds(context, opts, k, instruction)
        messages = choice_messages(context, opts, instruction)
        key = request_key("choose", messages, opts, k=k)
        start = time.perf_counter()
        if self.capabilities.logprobs:
            logprobs, stats = self._choose_logprobs(messages, opts)
            choices, mass = softmax_choices(opts, logprobs)
            method = "logprobs"
        else:
            choices, stats = self._choose_grammar(messages, opts, k)
            mass, method = None, "grammar"
        stats.latency_s = time.perf_counter() - start
        record = CallRecord(
            "choose",
            key,
            messages,
            self._stamp(stats),
            options=[asdict(o) for o in opts],
            text=LABELS[opts.index(next(o for o in opts if o.key == choices[0].key))],
            choices=[asdict(c) for c in choices],
            method=method,
            label_mass=mass,
        )
        self._notify(record)
        return ChooseResult(choices, record)

    def score(
        self, context: str | Sequence[Message], continuations: Sequence[Continuation | str | tuple[str, str]]
    ) -> ScoreResult:
        """The log-probability of each continuation after one shared context, recorded as one call.

        The context is rendered as a chat prompt that ends where the assistant's answer begins;
        each continuation's `prompt` then its `text` follow it verbatim. Backends with
        `batched_score` evaluate the context once and decode all continuations together.
        """
        conts = as_continuations(continuations)
        messages = as_messages(context)
        key = request_key("score", messages, continuations=conts)
        if not conts:
            return ScoreResult(
                [], CallRecord("score", key, messages, self._stamp(CallStats()), continuations=[], scores=[])
            )
        start = time.perf_counter()
        error: ModelOutputError | None = None
        try:
            logprobs, stats = self._score(messages, conts)
        except ModelOutputError as exc:
            logprobs, stats, error = [], exc.stats or CallStats(), exc
        stats.latency_s = time.perf_counter() - start
        record = CallRecord(
            "score",
            key,
            messages,
            self._stamp(stats),
            method="logprobs",
            continuations=[{"prompt": c.prompt, "text": c.text} for c in conts],
            scores=[round(x, 6) for x in logprobs],
            error=str(error) if error else None,
        )
        self._notify(record)
        if error is not None:
            error.records = [record]
            raise error
        return ScoreResult(list(record.scores or []), record)

    def judge(
        self, context: str | Sequence[Message], questions: Sequence[str], yes: str = " yes", no: str = " no"
    ) -> JudgeResult:
        """Ask each question after the shared context and read its yes/no log-odds, all in one `score` call."""
        conts = [Continuation(t, q) for q in questions for t in (yes, no)]
        res = self.score(context, conts)
        odds, p_yes = [], []
        for i in range(len(questions)):
            ly, ln = res.logprobs[2 * i], res.logprobs[2 * i + 1]
            odds.append(ly - ln)
            p_yes.append(1.0 / (1.0 + math.exp(min(50.0, ln - ly))))
        return JudgeResult(odds, p_yes, res.record)

    def _score(self, messages: list[Message], continuations: Sequence[Continuation]) -> tuple[list[float], CallStats]:
        """Log-probabilities of each continuation (backends that can score implement this)."""
        raise MedcoderError(f"the {self.backend or type(self).__name__} backend cannot score continuations")

    # -- shared machinery -------------------------------------------------------------
    def _choose_grammar(
        self, messages: list[Message], options: Sequence[Option], k: int
    ) -> tuple[list[Choice], CallStats]:
        """Fallback without log-probabilities: sample a label under a grammar, `k` times without replacement."""
        remaining = list(options)
        picked: list[Choice] = []
        total = CallStats()
        for rank in range(min(k, len(options))):
            labels = [LABELS[options.index(o)] for o in remaining]
            schema = {
                "type": "object",
                "properties": {"answer": {"type": "string", "enum": labels}},
                "required": ["answer"],
            }
            text, stats = self._chat(messages, schema, 16, 0.0)
            total.prompt_tokens += stats.prompt_tokens
            total.cached_tokens += stats.cached_tokens
            total.completion_tokens += stats.completion_tokens
            try:
                label = json.loads(text)["answer"]
                chosen = options[LABELS.index(label)]
            except (ValueError, KeyError, TypeError) as exc:
                raise ModelOutputError(f"grammar choice returned {text[:100]!r}") from exc
            picked.append(Choice(chosen.key, chosen.label, 1.0 if rank == 0 else 0.0))
            remaining.remove(chosen)
        picked += [Choice(o.key, o.label, 0.0) for o in remaining]
        return picked, total

    def _choose_in_rounds(
        self, context: str | Sequence[Message], options: list[Option], k: int, instruction: str | None
    ) -> ChooseResult:
        """More options than labels: choose within groups, then among the group winners."""
        size = self.max_options
        groups = [options[i : i + size] for i in range(0, len(options), size)]
        finalists: list[Option] = []
        group_probs: dict[str, float] = {}
        records: list[CallRecord] = []
        for g in groups:
            res = self.choose(context, g, k=1, instruction=instruction)
            records += res.records or [res.record]
            for c in res.choices:
                group_probs[c.key] = c.probability
            per_group = max(1, min(len(g), size // len(groups)))
            finalists += [Option(c.key, c.label) for c in res.choices[:per_group]]
        final = self.choose(context, finalists[:size], k=k, instruction=instruction)
        records += final.records or [final.record]
        final_probs = {c.key: c.probability for c in final.choices}
        # keep every option: finalists carry the final round's probability, the rest a share of their group's
        rest = [o for o in options if o.key not in final_probs]
        scale = 1e-3 / max(1, len(rest))
        choices = list(final.choices) + sorted(
            (Choice(o.key, o.label, group_probs.get(o.key, 0.0) * scale) for o in rest), key=lambda c: -c.probability
        )
        total = sum(c.probability for c in choices)
        for c in choices:
            c.probability /= total
        return ChooseResult(choices, final.record, records)

    def _stamp(self, stats: CallStats) -> CallStats:
        stats.model = stats.model or self.name
        stats.model_sha256 = stats.model_sha256 or self.sha256
        stats.backend = stats.backend or self.backend
        return stats

    def _notify(self, record: CallRecord) -> None:
        for observer in list(self.observers):
            try:
                observer(record)
            except Exception:  # an observer must never break a model call
                logger.exception("LLM call observer failed")

    def observe(self, observer: CallObserver) -> Callable[[], None]:
        """Register an observer; returns a function that removes it."""
        self.observers.append(observer)
        return lambda: self.observers.remove(observer) if observer in self.observers else None

    def close(self) -> None:
        """Free the model's resources (a no-op where there are none)."""
