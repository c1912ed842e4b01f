"""A product's ingredient line reaches its ATC code through general rules (salt and qualifier words, -ate as
-ic acid, roman numerals, INN stems, -trophin/-tropin) and standard US names, so products never seen in
training get a candidate too. Real stack: the bundled ATC file and the lexicon built from it."""

from __future__ import annotations

import pytest

from medcoder.knowledge.druglex import DrugLexicon, DrugMention, drug_lexicon, fold
from medcoder.knowledge.ontology import CodeSystem
from medcoder.ranking.drugs import candidates_of


@pytest.fixture(scope="module")
def lex(atc: CodeSystem) -> DrugLexicon:
    return drug_lexicon(atc)


def _codes(lex: DrugLexicon, ingredients: str) -> set[str]:
    keys = lex.ingredients(ingredients)
    mention = DrugMention(0, len(ingredients), ingredients, keys, "product")
    return {c.code for c in candidates_of(lex, mention)}


@pytest.mark.parametrize(
    ("ingredients", "code"),
    [
        ("LITHIUM CARBONATE", "N05AN01"),  # a salt word the SALTS list lacks
        ("CHOLESTYRAMINE RESIN", "C10AC01"),  # "resin" dropped, US name colestyramine
        ("MIXED SALTS AMPHETAMINE", "N06BA01"),  # qualifiers dropped, ph/f folded
        ("CHARCOAL ACTIVATED", "A07BA01"),
        ("INSULIN ISOPHANE HUMAN BIOSYNTHETIC", "A10AC01"),
        ("FUSIDATE SODIUM", "D06AX01"),  # -ate salt read as its -ic acid
        ("GADOTERATE MEGLUMINE", "V08CA02"),
        ("CLODRONATE DISODIUM", "M05BA02"),
        ("DIATRIZOATE SODIUM|DIATRIZOATE MEGLUMINE", "V08AA01"),
        ("FACTOR XIII", "B02BD07"),  # roman numeral kept whole, the ATC's "coagulation" added
        ("FACTOR VIII", "B02BD02"),  # not "factor VIII inhibitor bypassing activity" by prefix
        ("MOROCTOCOG ALFA", "B02BD02"),  # INN -cog stems
        ("TUROCTOCOG ALFA", "B02BD02"),
        ("NONACOG GAMMA", "B02BD04"),
        ("EPTACOG ALFA (ACTIVATED)", "B02BD08"),
        ("ONABOTULINUMTOXINA", "M03AX01"),
        ("EPOETIN ALFA", "B03XA01"),  # greek suffix dropped, epoetin alias
        ("CHORIONIC GONADOTROPIN", "G03GA01"),  # -tropin is the INN's -trophin
        ("HYDROXYETHYL STARCH 130/0.4", "B05AA07"),
        ("ANTIHEMOPHILIC FACTOR (RECOMBINANT) PORCINE SEQUENCE", "B02BD02"),
        ("ALPHA1-PROTEINASE INHIBITOR (HUMAN)", "B02AB02"),
        ("C1 ESTERASE INHIBITOR (HUMAN)", "B06AC01"),
        ("LIPASE|PROTEASE|AMYLASE", "A09AA02"),
        ("IMMUNOGLOBULIN (HUMAN)", "J06BA02"),
        ("URSODIOL", "A05AA02"),
        ("HYDROXYUREA", "L01XX05"),
        ("SUCCINYLCHOLINE CHLORIDE", "M03AB01"),
        ("BENZTROPINE MESYLATE", "N04AC01"),
        ("METHOTRIMEPRAZINE (METHOTRIMEPRAZINE MALEATE)", "N05AA02"),
        ("VITAMIN D2", "A11CC01"),
        ("ENALAPRILAT", "C09AA02"),
        ("CRISANTASPASE", "L01XX02"),
        ("HALOBETASOL PROPIONATE", "D07AC21"),
        ("LEUPROLIDE (LEUPROLIDE MESYLATE)", "L02AE02"),
        ("COLISTIMETHATE SODIUM", "J01XB01"),
    ],
)
def test_an_ingredient_line_reaches_its_atc_code(lex: DrugLexicon, ingredients: str, code: str) -> None:
    assert code in _codes(lex, ingredients), (ingredients, lex.ingredients(ingredients))


def test_a_whole_name_wins_before_its_salt_word_is_dropped(lex: DrugLexicon) -> None:
    """Calcium carbonate is its own ATC substance: the qualifier rule runs only when the whole name fails."""
    assert lex.ingredients("CALCIUM CARBONATE") != lex.ingredients("CALCIUM")
    assert "A02AC01" in _codes(lex, "CALCIUM CARBONATE")


def test_fold_keeps_roman_numerals_and_joins_trophin_spellings() -> None:
    assert fold("XIII") != fold("XI")
    assert fold("VIII") == "viii"
    assert fold("gonadotrophin") == fold("gonadotropin")


def test_product_only_names_are_not_lexicon_entries(lex: DrugLexicon) -> None:
    """Lipase and amylase are lab tests in a note: read as pancrelipase only on an ingredient line."""
    assert not lex.find("lipase 45, amylase 60")
