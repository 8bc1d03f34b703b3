"""The code under study: what this collection compares with Hugging Face, and nothing else.

Imports nothing from the other rooms (tests/test_layout.py). Read it in this order, each module building on the ones
before it:

1. teacher_forcing  shift_right, the causal and padding masks, the masked token-mean loss (T5's `_shift_right`,
                    `masking_utils.causal_mask_function`, `CrossEntropyLoss(ignore_index=-100)`)
2. tinfer           the hand-written encoder-decoder, with or without the decoder's causal mask
3. seq2seq          the one place that tells a TinferModel from an HF model: encoder, decoder call, special ids
4. step_loop        the decoder once per target position, with or without the KV cache (what greedy decoding runs)
5. losses           label smoothing three ways, step-by-step losses, gradient accumulation by hand
6. decoding         greedy, sampling and beam search written out (what `generate()` runs)
7. leakage_audit    does decoder position t see tokens after t? the black-box audit and the masks a decoder applies

Measuring helpers, figures and constrained search (not compared with HF) live in `utils.workbench`.
"""
