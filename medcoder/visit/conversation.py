"""The visit's doctor–patient conversation as an input: turns, who speaks, what the clinician assesses.

An ambient scribe hands over the conversation, not a note. A coder reading it takes the clinician's statements
of diagnosis and plan as the assessment ("for your first problem, your congestive heart failure ..."; "I think
you have a lumbar strain"), the patient's words as the history, and a question answered "no" as a denial
("any chest pain?" — "no"). Every span keeps its offsets into the transcript.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CLINICIAN = "clinician"
PATIENT = "patient"

_CLINICIAN_ROLES = r"doctor|dr\.?|physician|provider|clinician|nurse|np|pa|md|resident|attending"
_PATIENT_ROLES = r"patient|pt|patient guest|guest|mother|father|parent|caregiver|wife|husband|daughter|son|family"
_LABEL = re.compile(
    rf"^[ \t]*(?:\[(?P<bracket>[A-Za-z][A-Za-z _.-]{{0,30}})\]|(?P<plain>{_CLINICIAN_ROLES}|{_PATIENT_ROLES}|"
    rf"speaker ?\d|spk ?\d)[ \t]*:)[ \t]*",
    re.IGNORECASE | re.MULTILINE,
)
_IS_CLINICIAN = re.compile(rf"^(?:{_CLINICIAN_ROLES})\b", re.IGNORECASE)
_IS_PATIENT = re.compile(rf"^(?:{_PATIENT_ROLES})\b", re.IGNORECASE)
# what a clinician says more than a patient: used to tell which numbered speaker is the clinician
_CLINICIAN_TALK = re.compile(
    r"\b(exam|i think|let's|prescribe|order|any (?:fever|pain|chest pain)|do you have|how are you|"
    r"your (?:heart|lungs))\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Turn:
    """One speaker's turn: the text after the speaker label, to the next label."""

    start: int
    end: int
    speaker: str  # clinician | patient | other
    label: str


def turns(text: str) -> list[Turn]:
    """The transcript's turns; empty when the text is not a conversation (fewer than four labelled turns, or one
    speaker only)."""
    labels = list(_LABEL.finditer(text))
    if len(labels) < 4:
        return []
    names = [(m.group("bracket") or m.group("plain")).strip().lower() for m in labels]
    if len(set(names)) < 2:
        return []
    roles = {n: (CLINICIAN if _IS_CLINICIAN.match(n) else PATIENT if _IS_PATIENT.match(n) else "") for n in names}
    if (
        not any(roles.values())
        and len([m for m in labels if m.group("bracket")]) < 4
        and not all(re.match(r"sp(?:ea)?k(?:er)? ?\d", n) for n in names)
    ):
        return []
    bodies = [(m.end(), labels[i + 1].start() if i + 1 < len(labels) else len(text)) for i, m in enumerate(labels)]
    if "" in roles.values():  # numbered speakers: the one who talks most like a clinician is the clinician
        talk = {n: 0 for n in roles if not roles[n]}
        for n, (a, b) in zip(names, bodies):
            if n in talk:
                talk[n] += len(_CLINICIAN_TALK.findall(text[a:b]))
        if talk:
            lead = max(talk, key=lambda n: talk[n])
            for n in talk:
                roles[n] = CLINICIAN if n == lead and CLINICIAN not in roles.values() else PATIENT
    return [Turn(a, b, roles[n] or "other", n) for n, (a, b) in zip(names, bodies)]


_SPOKEN_SENTENCE = re.compile(r"[^.?!\n]*(?:[.?!]+|$)")


_LONG = 30  # words: an unpunctuated stretch longer than this is cut where the speaker moves on
_MOVE_ON = re.compile(r"\s(?=(?:okay|alright|all right|so|and then|um|uh|now|also|lastly)\s)", re.IGNORECASE)


def spoken_sentences(text: str, turn: Turn) -> list[tuple[int, int, str]]:
    """A turn's sentences (start, end, text): spoken text ends a sentence at . ? ! whatever case follows; a
    transcript without punctuation is cut at the words a speaker moves on with ("okay", "so", "alright")."""
    out = []
    for m in _SPOKEN_SENTENCE.finditer(text, turn.start, turn.end):
        raw = m.group()
        s = raw.strip()
        if len(s) <= 1:
            continue
        start = m.start() + raw.index(s[0])
        pieces = [start]
        if len(s.split()) > _LONG:
            for cut in _MOVE_ON.finditer(text, start, start + len(s)):
                if len(text[pieces[-1] : cut.start()].split()) >= 8:
                    pieces.append(cut.end())
        bounds = pieces + [start + len(s)]
        for a, b in zip(bounds, bounds[1:]):
            piece = text[a:b].strip()
            if len(piece) > 1:
                out.append((a, a + len(piece), piece))
    return out


_NO_ANSWER = re.compile(
    r"^\W*(?:no|nope|nah|not really|never|none|negative|not that i know of|i do n't think so|i don't think so|"
    r"i have n't|i haven't|i do n't|i don't|not at all)\b",
    re.IGNORECASE,
)
_YES_ANSWER = re.compile(r"^\W*(?:yes|yeah|yep|i do|i have|i did|sometimes|a little|definitely)\b", re.IGNORECASE)
# what the clinician says to the recording assistant ("hey dragon, show me the x-ray"), not to the patient
_TO_ASSISTANT = re.compile(
    r"\b(?:hey|okay|ok),? (?:dragon|dax)\b|\bdax\b|^\W*(?:show me|order|finalize|pull up|open)\b", re.IGNORECASE
)
_TAG_QUESTION = re.compile(r"[,.]\s*(?:okay|ok|right|alright|all right|yeah|you know)\s*\?$", re.IGNORECASE)
_FILL = re.compile(r"(?:\s,)?\s(?:uh|um|er|ah|erm|hmm|you know)\b(?:\s,)?|-(?=\s)", re.IGNORECASE)
_FILLER = re.compile(
    r"^\W*(?:okay|ok|all right|alright|mm-?hmm|uh-?huh|yeah|yes|sure|right|great|good|perfect|thanks?"
    r"|thank you|um|uh|so|and|hi|hello|bye)\W*$",
    re.IGNORECASE,
)

# where the clinician is in the visit, by what they say (the visit moves forward: history, exam, results, plan)
_EXAM_TALK = re.compile(
    r"\b(?:physical exam\w*|(?:let's|let me|i'm going to|i'm gon na|i wan na|i'll) (?:go ahead and )?(?:do|take|have) "
    r"(?:a |your |my |quick |a quick )*(?:exam|look)|on (?:your |my )?(?:physical )?exam(?:ination)?|"
    r"(?:your|the) (?:heart|lung|abdominal|neuro\w*|skin|knee|back|shoulder|physical) exam|examin(?:e|ing|ation))\b",
    re.IGNORECASE,
)
_RESULTS_TALK = re.compile(
    r"\b(?:show me|(?:look|looking) at (?:your|the|some of your) (?:results?|x-?rays?|labs?|mri|ct|echo\w*|ekg|"
    r"blood work)|results? of|review(?:ing|ed)? (?:the|your) (?:results?|labs?|x-?rays?|imaging|blood work))\b",
    re.IGNORECASE,
)
# a strong cue that the assessment and plan begins; weaker ones ("i think you have") count late in the visit only
_ASSESSMENT_TALK = re.compile(
    r"\b(?:my assessment|assessment and (?:my )?plan|my impression|in summary|impression is|"
    r"(?:first|second|third|next|last|final|other) (?:problem|issue)|problem number|in (?:the )?assessment|"
    r"diagnosis (?:is|will be|would be|of))\b",
    re.IGNORECASE,
)
_LATE_ASSESSMENT_TALK = re.compile(
    r"\b(?:i think (?:that )?(?:you (?:have|had|'ve)|this is|it's)|for your \w+|so for (?:your|the))\b", re.IGNORECASE
)
_PLAN_TALK = re.compile(
    r"\b(?:i want|i wan na|we'll|we will|i'll|i will|let's|continue|prescribe|refer|order|schedule|follow up|"
    r"come back|increase|decrease|start you|stop)\b",
    re.IGNORECASE,
)

# a clinician's statement of a problem: the phrase it names
_ORDINAL = r"(?:first|second|third|fourth|fifth|next|last|final|other)"
_PROBLEM_INTRO = re.compile(
    rf"\b(?:for|regarding|as far as|in terms of|with regards? to) (?:your|the|this|(?=problem))\s?"
    rf"(?:(?:{_ORDINAL} )?(?:problem|issue)(?: number \w+)?[\s,]*(?:so |which is |of |is |that's )?)?"
    r"(?:your |the |a |an |this |his |her )?(?P<problem>[a-z][a-z0-9 '/-]{2,80})"
    r"|\b(?:i think|i suspect|suspect|it (?:looks|sounds) like|looks like|sounds like) (?:that )?"
    r"(?:you (?:just |probably |likely |may )?(?:have|had|'ve got|'ve|are having|have got)|you've got|you've|"
    r"this is|it's|it is|she (?:has|had)|he (?:has|had))"
    r"(?: probably| likely| most likely| possibly)?(?: got)?(?: a| an)?(?: little bit of)?"
    r" (?P<thought>[a-z][a-z0-9 '/-]{2,80})"
    r"|\b(?:(?:you have|you've got|this is) (?:what (?:we|they) call|what's called|what is called)(?: a| an)?|"
    r"(?:so|and|now) your(?= \w+ (?:pain|problem|issue|disease|syndrome))|"
    r"you have (?:a|an)|you've got (?:a|an)|consistent with|diagnosis (?:is|of|will be|would be)|"
    r"diagnosed (?:you |her |him )?with)"
    r"(?: a| an)? (?P<stated>[a-z][a-z0-9 '/-]{2,80})",
    re.IGNORECASE,
)
_PROBLEM_END = re.compile(
    r"\s(?:and (?:i|we|you|it|that|then|so)|that|which|who|right now|so|from|because|but|or|as|at|since|"
    r"today|again|here|there|now|um|uh|you know|i|we|is|are|was|has|have|it|for|okay|alright|in|on|to|"
    r"right (?:here|there|now)|left (?:here|there)|let's|let|going|gon|wan|"
    r"with your|you're|you|if|when|what)\b|\s*[,.;?!]",
    re.IGNORECASE,
)
# a phrase that starts with one of these is not a problem ("for the next couple days", "i think it's a little ...")
_NOT_PROBLEM = re.compile(
    r"^(?:a|an|the|it|this|that|you|your|some|any|anything|something|time|good|great|fine|okay|lot|bit|little|"
    r"question|questions|plan|appointment|results?|exam|labs?|x-?rays?|mri|ct|medications?|medicine|problem|"
    r"issue|visit|next|first|last|couple|few|days?|weeks?|months?|years?|now|today|what|not|under|out|pretty|"
    r"very|really|just|going|doing|gon|wan|nice|normal|same|rest|most|surgery|test|tests|work|help|sure|one|two|"
    r"three|four|five|more|much|all|well|kind|sort|number|me|us|them|him|her|those|these|or|been|approximately|"
    r"long|overnight|full|further|pre|additional|walking|assessment|negative|scale|procedure|fluid|symptoms?|to|"
    r"decent|somebody|someone|secondary|bad|job|current|function|diagnosis|concern|for)$",
    re.IGNORECASE,
)
# a phrase naming a test, a procedure or a length of time is not a problem ("an egd", "six weeks")
_NOT_PROBLEM_ANYWHERE = re.compile(
    r"(?<!type )(?<!stage )(?<!grade )\d|\b(?:minutes?|hours?|days?|weeks?|months?|times?|tests?|scans?|x-?rays?|"
    r"mri|ct|echo\w*|ultrasound|egd|"
    r"colonoscopy|endoscopy|surgery|procedures?|prep|appointment|exam|labs?|blood work|molecular|plan)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class SpokenSentence:
    """A sentence of the conversation with its visit part and, for a question answered "no", the text to read."""

    start: int
    end: int
    text: str
    part: str
    speaker: str
    read: str = ""


def read_conversation(text: str, all_turns: list[Turn]) -> tuple[list[SpokenSentence], list[tuple[int, int, str]]]:
    """The conversation's sentences with their parts, and the problems the clinician states (start, end, phrase)."""
    out: list[SpokenSentence] = []
    problems: list[tuple[int, int, str]] = []
    phase = "hpi"
    last = max((t.end for t in all_turns), default=1)
    for k, turn in enumerate(all_turns):
        answer = next((t for t in all_turns[k + 1 : k + 2] if t.speaker == PATIENT), None)
        replied = text[answer.start : answer.end] if answer else ""
        for start, end, s in spoken_sentences(text, turn):
            asked = s.endswith("?") and not _TAG_QUESTION.search(s)
            read = ""
            if turn.speaker == CLINICIAN:
                phase = _next_phase(phase, s, start / last)
                if _TO_ASSISTANT.search(s) or _FILLER.match(s):
                    part = "other"
                elif asked:
                    part = "ros" if phase == "hpi" else "other"
                    # a question states nothing: the answer says whether it is denied, present or open
                    read = (
                        f"denies {s}"
                        if _NO_ANSWER.match(replied)
                        else s
                        if _YES_ANSWER.match(replied)
                        else f"question of {s}"
                    )
                elif phase == "assessment":
                    part = "plan" if _PLAN_TALK.search(s) and not _PROBLEM_INTRO.search(s) else "assessment"
                else:
                    part = phase
                if (phase == "assessment" or start / last > 0.6) and not asked and part != "other":
                    problems += _stated_problems(text, start, end)
            else:
                part = "other" if _FILLER.match(s) or len(s.split()) < 3 else ("hpi" if phase == "hpi" else "other")
            out.append(SpokenSentence(start, end, s, part, turn.speaker, read))
    # a phrase inside another one the clinician said ("contusion" in "right hand index finger contusion") adds nothing
    return out, [p for p in problems if not any(set(p[2].split()) < set(q[2].split()) for q in problems)]


def _next_phase(phase: str, sentence: str, where: float) -> str:
    """The visit's phase after a clinician's sentence: it moves forward (history, exam, results, assessment), the
    exam may follow the results, and nothing follows the assessment."""
    if phase == "assessment":
        return phase
    if _ASSESSMENT_TALK.search(sentence) or (where > 0.5 and _LATE_ASSESSMENT_TALK.search(sentence)):
        return "assessment"
    if _RESULTS_TALK.search(sentence):
        return "results"
    if _EXAM_TALK.search(sentence):
        return "exam"
    return phase


def _stated_problems(text: str, start: int, end: int) -> list[tuple[int, int, str]]:
    """The problem phrases a clinician's sentence names ("for your first problem, your back pain" -> back pain),
    as (start, end, phrase): the phrase without the speaker's fillers ("right hand, uh, index finger contusion"
    -> "right hand index finger contusion"), the offsets those of its words in the transcript."""
    clean = _FILL.sub(lambda m: " " * len(m.group()), text[start:end])  # same length: offsets hold
    clean = _ROMAN_TYPE.sub(lambda m: f"type {len(m.group(1))}".ljust(len(m.group())), clean)  # "type i" is type 1
    found: list[tuple[int, int, str]] = []
    pos = 0
    while m := _PROBLEM_INTRO.search(clean, pos):  # overlapping: a phrase may hold the next statement's intro
        group = next(g for g in ("problem", "thought", "stated") if m.group(g))
        pos = m.start(group) + 1
        a = m.start(group)
        stop = _PROBLEM_END.search(clean, a, min(len(clean), m.end(group) + 1))
        b = stop.start() if stop else m.end(group)
        words = clean[a:b].split()
        while words and _LEADING.match(words[0]):
            words = words[1:]
        if words and words[0] in ("your", "my"):
            continue
        cut = next((i for i, w in enumerate(words) if w in ("your", "my", "his", "her")), len(words))
        words = words[:cut]
        while words and words[-1] in ("right", "left", "and", "or", "of", "with"):  # a side comes before its noun
            words = words[:-1]
        if words == ["pain"] or (words and words[0] == "pain" and len(words) > 2):
            continue  # "pain" alone, or a finding ("pain with resistance against flexion"), is not a problem
        if not words or len(words) > 8 or _NOT_PROBLEM.match(words[0]) or _NOT_PROBLEM_ANYWHERE.search(" ".join(words)):
            continue
        a = start + clean.index(words[0], a)
        b = start + clean.index(words[-1], a - start) + len(words[-1])
        found.append((a, b, " ".join(words)))
    return found


_ROMAN_TYPE = re.compile(r"\btype (i{1,2})\b", re.IGNORECASE)
_LEADING = re.compile(r"^(?:of|with|about|a|an|the|some|this|that|probably|likely|just|like|little|bit|for)$", re.I)
