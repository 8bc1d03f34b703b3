"""The same "tinfer"-style model and weights as examples/tinfer_no_mask.py, with the causal mask switched on.

    python -m utils.audit_model examples/tinfer_causal.py:build       # exits 0: every check passes

The only difference is `causal=True`: decoder position t attends to positions <= t (Vaswani et al. 2017, §3.1
and §3.2.3), which is what makes one teacher-forced pass equal to the greedy loop used at test time.
"""

from tinfer_no_mask import Translator  # the audit puts this file's folder on sys.path, as `python file.py` does


def build():
    return Translator(causal=True).eval()
