"""telerapat: an audio-only teleconference bridge (SIP in, N-1 mixed rooms, keypad control)."""
