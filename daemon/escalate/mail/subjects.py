"""The words a ticket's subject is about, which incidents compare tickets by and the word index
(the ticket_word table) stores: pure text, shared by the incident finder and the migration that
indexed the tickets open before incidents had an index."""

from __future__ import annotations

import re

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_COMMON = frozenset("the and for with from our your you are not can cannot has have this that was were any all "
                    "re fwd fw aw sv please help issue problem".split())
# What mail clients put where there is no subject: it says nothing about the problem, so two such
# tickets are never one incident ("(no subject)" is what open_ticket stores for an empty one).
_PLACEHOLDER = re.compile(r"\s*(?:(?:re|fwd?|aw|sv|wg|tr)\s*(?:\[\d+\])?\s*:\s*)*(?:\(no subject\))?\s*",
                          re.IGNORECASE)


def subject_words(subject: str) -> frozenset[str]:
    """The words that say what a subject is about: lowercased, 3+ letters, common words left out;
    none for a placeholder subject (empty, "(no subject)", "Re:", "Fwd:")."""
    subject = subject or ""
    if _PLACEHOLDER.fullmatch(subject):
        return frozenset()
    return frozenset(w for w in _WORD.findall(subject.lower()) if len(w) >= 3 and w not in _COMMON)


def ticket_words(normalised_subject: str | None, subject: str | None) -> frozenset[str]:
    """The words a ticket is compared by: its normalised subject's, else its subject's."""
    return subject_words(normalised_subject or subject or "")
