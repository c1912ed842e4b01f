"""The one assertion-cue vocabulary: the words that say a finding is denied, normal, uncertain, a relative's,
past or over.

The extractor (cues just before a mention), the ranker's candidate features (cues anywhere in a retrieved
sentence) and the guideline rules (cues within the finding's clause) read the same words; each decides
only where in the text it looks. `cue_pattern` turns a vocabulary into a regular expression.
"""

from __future__ import annotations

import re

# a finding stated as absent
NEGATION = (
    r"no|not|denies|denied|deny|denying|negative for|without|free of|absence of|absent|no evidence of|"
    r"no signs? of|no history of|ruled out|rules out|resolved|never had|none"
)
# a finding stated as normal on exam or in results
NORMAL = (
    r"normal|normally|intact|unremarkable|within normal limits|wnl|negative|clear|symmetric|no acute|"
    r"non-?tender|nontender|well-healed|appropriate|"
    # "abdomen is benign" is a normal finding; a "benign appearing pituitary adenoma" is a benign neoplasm
    r"benign(?! (?:appearing|neoplasm|tumou?r|adenoma|lesion|mass|cyst|nodule|prostatic|paroxysmal|essential|"
    r"hypertension))"
)
# a finding that is considered, not established
UNCERTAIN = (
    r"possible|possibly|probable|probably|suspected|suspect|suspicious for|suspicion of|likely|rule out|"
    r"r/o|concern for|concerning for|versus|vs\.?|differential|question of|questionable|cannot exclude|"
    r"may have|might be|might have|may represent|could be|presumed|determine (?:if|whether)|"
    r"concern(?:ed)? (?:is )?that|"
    # a statement about a disease in general, not about the patient ("Lyme disease can cause ...")
    r"can cause|could cause|can lead to|may cause"
)
# a finding of a relative
FAMILY = (
    r"family history|mother|father|brother|sister|sibling|grandmother|grandfather|aunt|uncle|"
    r"maternal|paternal|son|daughter"
)
# a finding of the patient's past
HISTORY = r"history of|h/o|status post|s/p|previous|prior"
# a condition that is over: resolved, healed, cured, or placed in childhood
RESOLVED = (
    r"resolved|healed|cured|no longer|as a child|in childhood|remote history|"
    r"previously (?:treated|repaired)|has not recurred|went away|subsided|"
    r"until (?:yesterday|last \w+|this morning|(?:mon|tues|wednes|thurs|fri|satur|sun)day)"
)
# words that end a negation's reach: what follows them is asserted again
SCOPE_END = r"but|however|although|though|except|which|reports?|endorses?|complains?|admits?|notes?|has had|presents?"


def cue_pattern(*vocabularies: str, reach: int | None = None, stop: str = ".;:\n") -> re.Pattern[str]:
    """Any word of `vocabularies`; with `reach`, only one that ends at most `reach` characters before the end
    of the text, with none of `stop` between (a cue just before a mention)."""
    words = "|".join(vocabularies)
    tail = "" if reach is None else f"[^{re.escape(stop)}]{{0,{reach}}}$"
    return re.compile(rf"\b({words})\b{tail}", re.IGNORECASE)
