"""Entity extractor: diagnoses and medications per section as schema-constrained JSON.

Every entity carries an evidence span that is found in the note and stored as offsets; an
evidence string that is not in the note is dropped, never invented. Assertions come from
the model and are checked by rules (negation, family history, uncertainty cues) so that a
negated or family-history mention is not coded as the patient's condition.
"""

from __future__ import annotations

import functools
import logging
from typing import Literal

from pydantic import BaseModel, Field, create_model

from medcoder import cues
from medcoder.agents.base import AgentContext, AgentParams, NodeFn, register_agent
from medcoder.agents.notecontext import EXTRACT_SYSTEM, EXTRACT_TASK, note_messages
from medcoder.agents.sections import paragraphs
from medcoder.cues import cue_pattern
from medcoder.errors import MedcoderError
from medcoder.injection import coding_text
from medcoder.notetext import locate
from medcoder.records import Entity, NodeError, Section
from medcoder.state import CodingState, StateUpdate

logger = logging.getLogger(__name__)

Assertion = Literal["present", "absent", "possible", "historical", "family"]


class ExtractedEntity(BaseModel):
    kind: Literal["diagnosis", "medication"]
    mention: str = Field(max_length=100, description="the condition or drug, in a few words")
    evidence: str = Field(max_length=240, description="the exact words of the note that state it")
    assertion: Assertion
    laterality: Literal["left", "right", "bilateral", "none"] = "none"
    acuity: Literal["acute", "chronic", "unspecified"] = "unspecified"
    type: str = Field("", max_length=40, description="type or stage, e.g. 'type 2', 'stage 3'")
    episode: Literal["initial", "subsequent", "sequela", "none"] = "none"


class Extraction(BaseModel):
    entities: list[ExtractedEntity] = Field(max_length=12)


@functools.lru_cache(maxsize=8)
def _extraction_schema(max_entities: int) -> type[Extraction]:
    """The answer's model with room for `max_entities` (the grammar bounds the list)."""
    if max_entities == 12:
        return Extraction
    return create_model(
        "Extraction", __base__=Extraction, entities=(list[ExtractedEntity], Field(max_length=max_entities))
    )


class ExtractorParams(AgentParams):
    kinds: list[Literal["diagnosis", "medication"]] = ["diagnosis", "medication"]
    max_chunk_chars: int = Field(700, ge=200, description="sections longer than this are read in chunks")
    skip_sections: list[str] = ["allergies", "social_history", "review_of_systems", "instructions"]
    max_tokens: int = Field(700, ge=64)
    model: str = "default"
    layout: Literal["section", "note"] = Field(
        "section",
        description="section: one call per section chunk (a fan-out item); note: one call over the "
        "whole note in the shared note-first layout, whose prefix later agents reuse",
    )
    max_entities: int = Field(12, ge=1, le=60, description="entities one answer may hold")


# the shared cue words, anchored just before the mention in its sentence
_NEG = cue_pattern(cues.NEGATION, reach=60)
_FAMILY = cue_pattern(cues.FAMILY)
_POSSIBLE = cue_pattern(cues.UNCERTAIN, reach=60)
_HISTORY = cue_pattern(cues.HISTORY, reach=40)


def salvage(text: str) -> Extraction | None:
    """The complete entities of a cut-off answer (`{"entities": [{...}, {...}, {...` ), if any."""
    start = text.find("[")
    if start < 0:
        return None
    end = text.rfind("}")
    while end > start:
        try:
            return Extraction.model_validate_json(text[: end + 1] + "]}")
        except ValueError:
            end = text.rfind("}", start, end)
    return None


def sentence_before(note: str, start: int) -> str:
    """The text of the sentence that leads up to `start`."""
    cut = max(note.rfind(".", 0, start), note.rfind("\n", 0, start), note.rfind(";", 0, start))
    return note[cut + 1 : start]


def check_assertion(note: str, start: int, end: int, section: str, model_says: str) -> tuple[str, str | None]:
    """The assertion after rule checks, and which rule changed it (None when the model stands)."""
    before = sentence_before(note, start)
    if section == "family_history" or (_FAMILY.search(before) and model_says in ("family", "present")):
        return ("family", None if model_says == "family" else "family cue")
    if _NEG.search(before):
        return ("absent", None if model_says == "absent" else "negation cue")
    if model_says == "absent":
        return ("absent", None)
    if _POSSIBLE.search(before):
        return ("possible", None if model_says == "possible" else "uncertainty cue")
    if model_says == "present" and _HISTORY.search(before) and section == "past_medical_history":
        return ("historical", "history cue")
    return (model_says, None)


@register_agent("entity_extractor", ExtractorParams)
def entity_extractor(params: ExtractorParams, ctx: AgentContext) -> NodeFn:
    """Extract diagnoses and medications from one section (a fan-out item) with verified evidence."""

    schema = _extraction_schema(params.max_entities)

    def run(state: CodingState) -> StateUpdate:
        note = coding_text(state.note)
        if params.layout == "note":  # the whole note, once, in the layout later agents share
            section = Section(id="note", name="note", start=0, end=len(note))
            chunks = [(0, len(note))]
        else:
            if not isinstance(state.item, Section) or state.item.name in params.skip_sections:
                return {}
            section = state.item
            text_start, text_end = section.start, section.end
            chunks = [
                (text_start + a, text_start + b)
                for a, b in paragraphs(note[text_start:text_end], params.max_chunk_chars)
            ]
        llm = ctx.llm(params.model)
        entities: list[Entity] = []
        errors: list[NodeError] = []
        for c_start, c_end in chunks:
            chunk = note[c_start:c_end]
            if params.layout == "note":
                messages = note_messages(note, ctx.prompt("task", PROMPTS, kinds=" and ".join(params.kinds)))
            else:
                messages = [
                    {"role": "system", "content": ctx.prompt("system", PROMPTS, kinds=" and ".join(params.kinds))},
                    {
                        "role": "user",
                        "content": ctx.prompt("user", PROMPTS, section=section.name.replace("_", " "), text=chunk),
                    },
                ]
            # an answer is rarely longer than the text it quotes: bound it, so a looping model stops early
            budget = min(params.max_tokens, 160 + len(chunk) // 2)
            try:
                out = llm.chat(messages, schema, max_tokens=budget).parsed
            except MedcoderError as exc:  # junk or a cut-off answer: keep what is whole, record the rest
                out = salvage(getattr(exc, "text", ""))
                error = NodeError(
                    node="extract", section=section.id, error=str(exc)[:300], salvaged=len(out.entities) if out else 0
                )
                errors.append(error)
                ctx.emit("error", error.model_dump(include={"section", "error", "salvaged"}))
            for ent in out.entities if out else []:
                if ent.kind not in params.kinds:
                    continue
                span = locate(chunk, ent.evidence) or locate(chunk, ent.mention)
                if span is None:
                    ctx.emit(
                        "dropped",
                        {
                            "section": section.id,
                            "mention": ent.mention,
                            "evidence": ent.evidence,
                            "reason": "evidence not found in the note",
                        },
                    )
                    continue
                start, end = c_start + span[0], c_start + span[1]
                inner = locate(note[start:end], ent.mention)  # narrow to the mention when it lies inside
                m_start, m_end = (start + inner[0], start + inner[1]) if inner else (start, end)
                assertion, rule = check_assertion(note, m_start, m_end, section.name, ent.assertion)
                entities.append(
                    Entity(
                        id=f"{ent.kind[0]}{start}-{end}",
                        kind=ent.kind,
                        mention=ent.mention.strip(),
                        start=start,
                        end=end,
                        text=note[start:end],
                        section=section.id,
                        section_name=section.name,
                        assertion=assertion,
                        model_assertion=ent.assertion,
                        assertion_rule=rule,
                        laterality=ent.laterality,
                        acuity=ent.acuity,
                        type=ent.type,
                        episode=ent.episode,
                    )
                )
        ctx.emit(
            "entities",
            {
                "section": section.id,
                "entities": [
                    e.model_dump(include={"id", "kind", "mention", "start", "end", "assertion"}) for e in entities
                ],
            },
        )
        return {"entities": entities, "errors": errors}

    return run


PROMPTS = {
    "system": EXTRACT_SYSTEM,
    "task": EXTRACT_TASK,
    "user": 'Section: $section\n"""\n$text\n"""',
}
