"""Helpers of the tinfer notebooks, in five rooms; imports point one way: `handwritten <- workbench <- experiments`,
`harness <- workbench`, `harness <- reporting <- experiments` (tests/test_layout.py). One line per module:

handwritten/   the code under study: read it in one sitting
    teacher_forcing     shift_right, causal and padding masks, the masked token-mean loss
    tinfer              the hand-written encoder-decoder, with or without the decoder's causal mask
    losses              label smoothing three ways, step-by-step losses, gradient accumulation by hand
    decoding            greedy, sampling and beam search written out (what generate() runs)
    leakage_audit       does decoder position t see tokens after t? the black-box audit and mask capture
    step_loop           the decoder once per target position, with or without the KV cache: logits and losses
    seq2seq             the one place that tells a TinferModel from an HF model; special token ids

workbench/     what experiments are built from
    data                the numbers-and-dates translation corpus and the English text corpus
    tokenizers          the small trained T5-, Marian- and BART-style tokenizers
    models              model builders: tiny HF T5 / Marian / BART from configs, and tinfer
    batching            text pairs to padded tensors, as DataCollatorForSeq2Seq pads them
    training            the one training loop every variant uses
    variants            the trained variants of 04 (no mask, causal, T5, Marian): build, train, checkpoints
    jobs                (variant, seed) jobs side by side: worker processes on CPUs, in-process on a GPU
    distributed         data parallelism and the loss: global token normalisation across ranks
    metrics             exact match, chrF, BLEU, word and phoneme error rates
    uncertainty         the one bootstrap: seeds then test items, paired differences; exact intervals at 0/n
    device              device="auto" and to_device(batch, device)
    simulated_accelerator  a CPU stand-in for CUDA that refuses what CUDA refuses (TINFER_SIMULATE_CUDA=1)
    tolerance           one tolerance model for every closeness claim: atol + rtol x magnitude, by dtype
    reproducibility     set_seed
    cmudict             the CMU Pronouncing Dictionary: loader and split by word
    real_pairs          real English -> German UI strings from gettext catalogues (data/real_pairs/)
    constrained_search  beam search forced to contain words (left transformers' core in 5.x; not compared with HF)
    audit_figures       the audit's sensitivity heatmap and attention-mask grids
    probes              measuring helpers: pick_spread, decoder position counter, reload with old config entries

experiments/   one module per notebook's experiment
    trainer_measurements 03: what Seq2SeqTrainer does to the loss and the update
    tinfer_training     04 (and 04b): the step loop, one (variant, seed) job, figures over seeds, the verdict
    lm_objectives       06: causal LM, masked LM and T5 span corruption by hand
    recipe              07: HF's translation recipe on transformers 5.x
    architecture        08: architectures read off built models
    audit_your_model    09: the audit of a user's model (also `python -m utils.audit_model`)
    auditable_models    09: the interface the audit takes, and adapters for HF, nn.Transformer, recurrent models
    torch_transformer_traps 09: nn.Transformer's tgt_is_causal hint and eval() fast path, measured
    batch_lint          09: the batch linter (also `python -m utils.lint_batch`): classic seq2seq batch bugs
    pytest_audit        09: the pytest plugin: `pytest --audit-model path.py:build`, `--lint-batch FILE`
    real_data           10: the experiment on CMUdict grapheme-to-phoneme
    g2p_en_model        10: the pretrained g2p-en GRU encoder-decoder as a torch module
    data_parallel       11: gloo processes on the CPU and what data parallelism does to the loss
    train_command       the training command (`python -m utils.train`), one process or many
    hf_defaults         12: HF's defaults measured, per family, config and call form
    version_drift       13: HF's behaviours on transformers 4.46 / 4.57 / 5.24, one record per release
    real_translation    14: notebook 04's variants on real English -> German pairs, intervals over seeds
    bench               `make bench`: hand-written vs HF, same model and inputs

harness/       running notebooks
    run                 the runner (`python -m utils.run`): checks parameters, executes, reports the outcome
    publishing          staging, locks, signals, the all-or-nothing swap into the report folder
    parameters          the parameters cell: read, coerce, declarative rules
    results             the results recorder: claims, metrics, timings, versions; the one results loader
    paths               repository paths; where a run writes
    figures             one way to save figures
    source              show a hand-written function beside the installed HF lines
    kernel              which Jupyter kernel runs the notebooks

reporting/     what the reader sees: findings generated from claims, tables, the deck, the site
    provenance          sentences generated from the claims that test them
    findings            00: every findings sentence generated from the claims that test it
    sentences           the findings records the deck and the site read
    markdown            Markdown tables
    render              what `make run` renders beyond the notebooks: deck, site, index
    deck                the lab-meeting deck from the findings records
    site                the offline report site
    site_hooks          mkdocs hooks that keep the site offline
    browser             headless Chromium through Playwright, for the browser tests
    verify              does a rerun reproduce the published reports? (`python -m utils.verify DIR`)

The top-level modules (run, data, tokenizers, render, bench, audit_model, lint_batch, train, verify, drift) only start
commands.
"""
