"""A Debian package's summary from a Python project's own description: one short line that ends where a phrase
does, without the project's name in front (lintian's description-starts-with-package-name)."""

from __future__ import annotations

import re

__all__ = ["DESCRIPTION_MAX", "named_in_front", "project_summary", "without_name"]

# Debian Policy 3.4.1: the synopsis is "certainly under 80 characters".
DESCRIPTION_MAX = 80


def project_summary(description: str, name: str = "") -> str:
    """The package summary from a project's own description: its first sentence without the project's name in
    front ("rq-dashboard is a general purpose..."), cut to fit where a clause ends in the second half ("..., jobs,
    and workers" gives "..., jobs"), else where a phrase does (before a preposition), never after a word that
    leads into the next ("... of your"), and at a word when nothing else is there.

    PyPI takes any length; a Debian summary is one short line, and a project
    packaged as it is must not be refused for its metadata.
    """
    text = " ".join(description.split())
    sentence = text.split(". ")[0].rstrip(".")
    named = re.match(named_in_front(name) + r"(?=\w)", sentence, flags=re.IGNORECASE) if name else None
    if named:
        sentence = sentence[named.end()].upper() + sentence[named.end() + 1:]
    if len(sentence) <= DESCRIPTION_MAX:
        return sentence
    cut = sentence[:DESCRIPTION_MAX + 1].rsplit(" ", 1)[0][:DESCRIPTION_MAX]  # a word longer than the line: cut
    # Else before a preposition ("... across several regions| using the shared"): a phrase ends there.
    ends = late_ends(CLAUSE_END, cut) or late_ends(PHRASE_START, cut)
    if ends:
        cut = cut[:ends[-1]]
    # Never a word that leads into the next one ("... members of your").
    trimmed = DANGLING_END.sub("", cut)
    return (trimmed if len(trimmed) >= DESCRIPTION_MAX // 2 else cut).rstrip(",;:")


def late_ends(pattern: re.Pattern[str], text: str) -> list[int]:
    """Where `pattern` matches in the second half of the summary's line."""
    return [found.start() for found in pattern.finditer(text) if found.start() >= DESCRIPTION_MAX // 2]


# Where a clause or a list's item ends: before a comma or semicolon, or before a word that joins the next one.
CLAUSE_END = re.compile(r"[,;:](?= )| (?=(?:and|or|but|with|for|that|which)\b)", re.IGNORECASE)


# Where a phrase ends when no clause does: before a preposition.
PHRASE_START = re.compile(
    r" (?=(?:of|in|on|at|to|by|from|into|onto|via|using|across|over|under|through|within|without|between|like|"
    r"where|when|while)\b)", re.IGNORECASE)
# Words a phrase does not end with (articles, prepositions, conjunctions, possessives), however many in a row.
DANGLING_END = re.compile(
    r"(?:[\s,;:]+(?:a|an|the|and|or|but|nor|of|in|on|at|to|by|for|from|into|onto|with|without|via|as|than|that|"
    r"which|who|whose|is|are|its|their|your|our|his|her|my|this|these|those|each|every|any|some|all))+[\s,;:]*$",
    re.IGNORECASE,
)


def named_in_front(name: str) -> str:
    """The pattern (case aside) of `name` in front of a description, as a word (as lintian's
    description-starts-with-package-name takes it: "moin" starts "Moin wiki", not "MoinMoin is a wiki"), with the
    article before it and the "is a" after it: "The orders-api service", "rq-dashboard is a ..."."""
    return rf"^(?:(?:a|an|the)\s+)?{re.escape(name)}\b[\s:,-]*(?:(?:is|are)\s+)?(?:(?:a|an|the)\s+)?"


def without_name(text: str, name: str) -> str:
    """`text` without `name` in front (named_in_front) nor a leading article (lintian), however often repeated."""
    before = None
    while text != before:
        before = text
        text = re.sub(named_in_front(name), "", text, flags=re.IGNORECASE)
        text = re.sub(r"^(a|an|the)\s+", "", text, flags=re.IGNORECASE)
    return text
