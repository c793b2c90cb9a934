import secrets

from escalate import tokens

SECRET = b"k" * 32


def test_a_minted_token_verifies_only_for_its_ticket_and_tier():
    mid = tokens.new_message_id(SECRET, "T-7", 1, "example.com")
    assert mid.endswith("@example.com") and tokens.looks_like_ours(mid)
    assert tokens.verify(SECRET, mid, "T-7", 1)
    assert not tokens.verify(SECRET, mid, "T-8", 1)
    assert not tokens.verify(SECRET, mid, "T-7", 2)
    assert not tokens.verify(b"other-secret", mid, "T-7", 1)


def test_random_tokens_are_never_accepted():
    accepted = 0
    for _ in range(10_000):
        guess = f"esc.{secrets.token_hex(8)}.{secrets.token_hex(13)[:26]}@example.com"
        accepted += tokens.verify(SECRET, guess, "T-7", 1)
    assert accepted == 0


def test_tampered_tokens_fail():
    mid = tokens.new_message_id(SECRET, "T-7", 1, "example.com")
    nonce = mid.split(".")[1]
    assert not tokens.verify(SECRET, mid.replace(nonce, "0" * 16), "T-7", 1)
    assert not tokens.verify(SECRET, "not-a-token@example.com", "T-7", 1)
