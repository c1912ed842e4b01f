"""The visit-note package: how a visit is read, whatever its layout, and how its codes are decided.

Reading: `sections` (a note's sections by their headers, every vocabulary), `parts` and `classifier` (the visit
part of each sentence: headers, a learned sentence classifier, problem lists), `conversation` (the doctor–patient
conversation as an input), `layout` (`read_layout(note)`, the one entry point the ranker, the rules and the drug
coder share: visit note or case report), `spans` (what is searched in a note: its sentences, problem lines and
mentions, and the `Sighting`s found there).

Coding (ICD-10-CM: the guidelines, the Alphabetic Index and the Tabular List): `guidelines` (a finding's status in
its sentence, signs and sites, the outpatient rules, laterality and the 7th character), `index_phrase` (a phrase read
through the Index the way a coder reads it), `features` (the ranker's visit feature group), `rules` (the rules over
a visit note's codes, in order), `conventions` (the coding conventions), `learn` (the sentence classifier learned).

The order a visit note's codes are decided in (`ranking.coder.RankedCoder.rank`, then `finish`):

1. The ranker scores every candidate (`ranking.candidates`, with the `features.VISIT_FEATURES`), calibrates it by
   the note's kind (visit or case), blends in the verifier when asked, and accepts those at or above the threshold
   (`ranking.coder.ranked_codes`; a code resting only on the memory of a note unlike any it holds is not).
2. `rules.apply_guidelines`, on visit notes only (`read_layout(note).is_visit`; a case report skips to 3):
   a. the assessment's problem lines (and any problems a model listed) are read through the Alphabetic Index, once:
      the words before an uncertainty cue, the Index's reading, then the side and 7th character the line states;
   b. assessed problems (Section IV): a problem line no accepted code rests on is coded with the Index's complete
      reading (decision "index", probability at least 0.8), else with the likeliest present candidate the line
      names, when it reaches half the threshold (decision "named");
   c. the Index's reading over a sibling of its category ("index-reading"), unless the sibling refines it;
   d. the words the Index gives a meaning ("specified"): an unspecified site becomes the site the evidence names;
      diabetes with hyperglycemia needs a sentence saying the sugars are high, and such a sentence makes it so;
   e. laterality and the 7th character the evidence states (`guidelines.specify`, "specified");
   f. the hard outpatient rules, `guidelines.OUTPATIENT_RULES` in order, each over the codes the earlier kept:
      status_drop (normal-or-negated, family-history, uncertain-diagnosis), referral_question, past_condition,
      history_or_status, symptom_of_diagnosis, unspecified_beside_specific, hypertension_combination
      (combination-code);
   g. the coding conventions in use (`conventions.CONVENTIONS` order): hypertension, heart-failure-type,
      diabetes-complications, specificity, aftercare (decision "convention", or "set-aside").
3. `ranking.coder.finish`: a visit note's codes get the final calibration of their decisions
   (`ranking.decisions.FinalCalibration`); a case report's the auto-accept policy.
"""

from medcoder.visit.layout import VisitLayout, read_layout

__all__ = ["VisitLayout", "read_layout"]
