"""The comparison path: the model-driven tree walk (wave 1), kept to compare against the ranker. Not the default.

Its agents code a note the first way medcoder did: the `retriever` searches every extracted mention for entry
points, the `navigator` has the model walk the code system's tree level by level with `choose` over the real
children (so it cannot return a code that does not exist), the `critic` checks each proposal and sends an entity
back once, and the `term` agent makes a whole short text (a drug product, a problem-list line) one mention.
The workflows that use them are `icd10cm-tree`, `atc-tree` and `full-tree` (`medcoder/engine/builtin/comparison/`,
copied to `workflows/comparison/`), and the `tree` strategy of `medcoder eval` (`evaluation.strategies`).

The workflows that code today (`icd10cm`, `atc`, `full`, ...) rank candidates with a learned ranker instead
(`agents.ranker`, `agents.drug_ranker`) and import nothing from here: a rule both paths apply lives on the current
side (`agents.excludes`). `tests/test_layout.py` keeps it so: no module outside this package (but the evaluation
strategies that exist to compare) imports it, and no current workflow names one of its agents.

The agents are found by name through the `medcoder.agents` entry points (`pyproject.toml`), like every agent, so a
workflow names `navigator`, never this package's path.
"""
