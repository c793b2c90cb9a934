import pytest
from escalate.ingest.conversations import normalise_subject, subject_refs


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


@pytest.mark.parametrize("subject, refs", [
    ("SV: VS: [T-7] Tulostin", ["T-7"]),
    ("Re[3]: *EXT*: [T-7] Printer", ["T-7"]),
    ("Fwd: Re: Printer on fire [T-7] [T-9]", ["T-7", "T-9"]),
    ("Ticket [T-7][T-7] twice", ["T-7", "T-7"]),
    ("[t-7] lower case", ["T-7"]),
])
def test_subject_refs_behind_any_prefix_and_at_the_end(subject, refs):
    assert subject_refs(subject, "T") == refs


def test_encoded_subject_tag_is_found_after_decoding():
    from escalate.mail.parse import parse_message

    raw = b"From: a@example.org\r\nSubject: =?utf-8?q?AW=3A_=5BT-42=5D_Rechnungspr=C3=BCfung?=\r\n\r\nx\r\n"
    parsed = parse_message(raw)
    assert subject_refs(parsed.subject, "T") == ["T-42"]
    assert normalise_subject(parsed.subject, "T") == "rechnungsprüfung"
