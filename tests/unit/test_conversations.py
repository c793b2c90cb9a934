import pytest

from escalate.conversations import normalise_subject, subject_refs


@pytest.mark.parametrize("subject, refs", [
    ("[T-12] Printer on fire", ["T-12"]),
    ("Re: [T-12] Printer on fire", ["T-12"]),
    ("AW: RE: Fwd: [EXT] [t-12] Printer", ["T-12"]),
    ("Printer on fire [T-12]", ["T-12"]),
    ("[ T-12 ] spaced", ["T-12"]),
    ("[T-3] and [T-12]", ["T-3", "T-12"]),
    ("T-12 without brackets", []),
    ("[TT-12] other prefix", []),
])
def test_subject_refs(subject, refs):
    assert subject_refs(subject, "T") == refs


@pytest.mark.parametrize("subject", [
    "Printer on fire", "Re: Printer on fire", "RE: re: Printer on fire", "AW: Printer on fire",
    "SV: Printer  on fire", "Fwd: Printer on fire", "[EXT] Re: Printer on fire", "Re[2]: Printer on fire",
    "Re: [T-4] Printer on fire",
])
def test_normalise_subject_strips_what_clients_add(subject):
    assert normalise_subject(subject, "T") == "printer on fire"
