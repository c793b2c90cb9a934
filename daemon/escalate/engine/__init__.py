"""The tick: evaluate due tickets against the rules and apply the ladder's decisions; the daily
digest and drills."""
