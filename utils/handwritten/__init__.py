"""The code under study: hand-written teacher forcing, masks, loss, the tinfer model, decoding, the leakage audit.

Imports nothing from the other rooms (tests/test_layout.py).
"""
