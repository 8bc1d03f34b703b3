"""The findings (notebook 00, FINDINGS.md, the deck): every sentence generated from the claims that test it.

Each sentence is a `utils.reporting.provenance.Sentence`: a template, the claims that test what it says (with a
one-line reason each: the reviewed mapping), the metrics it quotes and the paper sections it cites. Rendering
against the notebooks' results gives the sentence, or "not established: ..." naming the missing or failing claim.
The verdict table's HF cells and verdicts are sentences too; its paper cells are citations.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils.harness.results import load_all_results
from utils.reporting.provenance import Claim, Metric, Sentence, render, render_all

__all__ = [
    "ANSWERS", "AUDIT", "DATA_PARALLEL", "HF_DEFAULTS", "PITFALLS", "QUESTIONS", "REAL_DATA", "ROWS", "SCOPE",
    "USER_MODEL_CLAIM_PREFIX", "Row",
    "all_sentences", "answer_blocks", "failing_claims", "findings_markdown", "findings_results", "missing_claims",
    "sanity_claims",
    "sentence_records", "sentences_of", "verdict_table",
]

# Claims about the model a user audits in notebook 09 describe THAT model (the default audits a leaky
# example on purpose); they are reported apart, not counted as failures of the collection.
USER_MODEL_CLAIM_PREFIX = "audited_model_"

NB01, NB02, NB03, NB04, NB04B, NB05, NB08, NB09 = (
    "01_shift_right", "02_causal_mask", "03_loss_masking", "04_tinfer_training", "04b_tinfer_sweep", "05_decoding",
    "08_architectures", "09_audit_your_model")
NB07, NB10, NB11, NB12 = "07_translation_recipe", "10_tinfer_real_data", "11_data_parallel", "12_hf_defaults"
NB13 = "13_version_drift"
LONG10 = "g2p-long/10_tinfer_real_data"  # make g2p-long's run of notebook 10, read by notebook 00 beside the default
FAMILIES = ("t5", "marian", "bart")

QUESTIONS = ("Is this what T5 does?", "Is this what the original Transformer does?",
             "Is this what T5 and the original Transformer do in Hugging Face?")


def claim(notebook: str, claim_id: str, reason: str) -> Claim:
    return Claim(notebook, claim_id, reason)


def metric(notebook: str, name: str, spec: str = "{:.2f}", interval: str | None = None,
           section: str = "metrics") -> Metric:
    return Metric(notebook, name, spec, interval, section)


EXACT = {variant: metric(NB04, f"{variant}_greedy_exact_match", interval=f"{variant}_greedy_exact_match_interval")
         for variant in ("no_mask", "causal", "t5", "marian")}
# exact match on the test split is a multiple of 1/200: three decimals print a sweep's range exactly (two would turn
# 0.925–0.935 into 0.93–0.94)
SWEEP_RANGE = {variant: metric(NB04B, f"n4000_{variant}_greedy_exact_match_range", "{0[0]:.3f}–{0[1]:.3f}")
               for variant in ("no_mask", "causal", "t5", "marian")}
# numbers inside `code` come from the results too
IGNORE = metric(NB03, "collator_label_pad_token_id", "{:d}")  # DataCollatorForSeq2Seq's default label padding
GENERATE = {"bare": metric(NB05, "bare_generate_new_tokens", "{:d}"),
            "max_length": metric(NB05, "default_max_length", "{:d}"),
            "explicit": metric(NB05, "explicit_max_length_new_tokens", "{:d}"),
            "beams": metric(NB05, "marian_checkpoint_num_beams", "{:d}")}

# ---------------------------------------------------------------------------------------------- claims, reused

T5_SHIFT = (claim(NB01, "t5_shift_matches_handwritten", "HF's `_shift_right` run on the same labels"),
            claim(NB01, "t5_forward_with_labels_uses_shift_right", "the decoder inputs T5 builds from labels only"))
MARIAN_SHIFT = (claim(NB01, "marian_shift_matches_handwritten", "HF's `shift_tokens_right` run on the same labels"),
                claim(NB01, "marian_forward_with_labels_uses_shift_right",
                      "the decoder inputs Marian builds from labels only"))
HF_CAUSAL = (claim(NB02, "hf_causal_mask_matches_handwritten_t5", "the mask T5's decoder applies, captured"),
             claim(NB02, "hf_causal_mask_matches_handwritten_marian", "the mask Marian's decoder applies, captured"),
             claim(NB02, "audit_passes_hf_models", "the black-box audit finds no future leak in HF's decoders"))
NONE_MASK = (claim(NB02, "none_mask_does_not_ignore_pads", "the mask applied with decoder_attention_mask=None"),
             claim(NB02, "none_and_padding_mask_agree_on_real_positions",
                   "logits with and without a padding mask, compared at real positions"))
LEAK = (claim(NB04, "no_mask_model_leaks", "the audit perturbs decoder inputs after t on the trained model"),
        claim(NB02, "audit_flags_no_mask_model", "the same audit on an untrained no-mask decoder"))
LOSS = (claim(NB03, "hf_loss_equals_handwritten_t5", "HF's loss against a hand-written token mean, T5"),
        claim(NB03, "hf_loss_equals_handwritten_marian", "the same for Marian"),
        claim(NB03, "hf_loss_is_token_mean", "token mean and sequence mean told apart on unequal lengths"))
NO_STEP_MASKING = (claim(NB03, "one_pass_loss_equals_sum_of_step_losses", "one causal pass vs the step losses"),
                   claim(NB03, "pad_counts_unless_minus_100", "the loss with pad ids left in the labels"))
GREEDY = (claim(NB05, "greedy_matches_generate_t5", "hand-written greedy vs generate(num_beams=1), T5"),
          claim(NB05, "greedy_matches_generate_marian", "the same for Marian"))
DEFAULTS = (claim(NB05, "bare_generate_is_greedy_with_20_new_tokens",
                  "new tokens of a bare generate() and of an explicit max_length, counted"),
            claim(NB05, "marian_checkpoint_config_turns_on_beam_search",
                  "generate() on a model whose config carries opus-mt's generation settings"))
FORCED_EOS = claim(NB05, "forced_eos_at_length_limit_marian_bart",
                   "the last token of Marian's outputs that run to the limit, read")
LENGTH_PENALTY = claim(NB05, "generate_scores_divide_by_length_power_not_gnmt",
                       "generate()'s beam scores recomputed from its own token scores under both penalties")
ONE_PASS = (claim(NB02, "one_pass_equals_loop_t5", "logits of one pass vs the loop over prefixes, T5"),
            claim(NB02, "one_pass_equals_loop_marian", "the same for Marian"),
            claim(NB04, "step_loop_gradients_equal_one_pass", "gradients of the trained causal model, compared"))
DECISIVE = (claim(NB04, "no_mask_model_leaks", "the trained no-mask decoder reads later inputs"),
            claim(NB04, "causal_ranks_above_no_mask", "paired bootstrap of the exact-match difference"),
            claim(NB04, "no_mask_fails_at_greedy", "greedy decoding of every trained variant, scored"))
DECIDING = {"no_mask": EXACT["no_mask"], "causal": EXACT["causal"]}  # the number that decides every answer
DECIDING_TEXT = ("Greedy exact match on the test split, same data, size and budget: {no_mask} without the causal "
                 "mask, {causal} with it.")


@dataclass(frozen=True)
class Row:
    """A verdict-table row: the researcher's practice, two paper citations, two measured HF cells, a verdict."""

    topic: str
    tinfer: str
    vaswani: str  # citation
    t5_paper: str  # citation
    hf_t5: Sentence
    hf_marian: Sentence
    verdict: Sentence


def _cell(row_id: str, column: str, template: str, claims: tuple[Claim, ...], **metrics: Metric) -> Sentence:
    return Sentence(f"verdict.{row_id}.{column}", "verdict_cell", template, claims=claims, metrics=metrics)


ROWS = (
    Row(
        "Decoder input at training", "the whole target shifted right by one, fed in one pass",
        "[§3.1: output embeddings offset by one position]", "[§2.4: teacher forcing, maximum likelihood]",
        _cell("input", "hf_t5", "`_shift_right(labels)`, start token = pad as t5-small's config sets it "
              "(`T5Config()` defines none)",
              T5_SHIFT + (claim(NB01, "t5_default_config_defines_no_start_token", "the library default, looked up"),
                          claim(NB12, "t5_labels_only_builds_shift_right_of_labels",
                                "labels only, on t5-small's documented config"))),
        _cell("input", "hf_marian", "`shift_tokens_right(labels)`, start token = pad (also in `MarianConfig()`)",
              MARIAN_SHIFT + (claim(NB01, "marian_default_config_starts_from_pad", "the library default, read"),)),
        Sentence("verdict.input", "verdict", "SAME: the researcher's decoder input is what HF's models and "
                 "`DataCollatorForSeq2Seq` build from the labels.",
                 claims=T5_SHIFT + MARIAN_SHIFT + (
                     claim(NB01, "collator_builds_decoder_inputs_by_shift", "the collator's output, compared"),),
                 citations=("Vaswani et al. 2017, §3.1", "Raffel et al. 2020, §2.4"),
                 title="Decoder input at training", notes="Notebook 01 shows HF's shift functions beside ours.")),
    Row(
        "Decoder self-attention mask", "padding only: no causal mask",
        "[§3.2.3: causal, illegal connections set to −∞]", "[§3.2.1: causal mask in the decoder]",
        _cell("mask", "hf_t5", "causal, built inside the decoder; with `decoder_attention_mask=None` no padding mask "
              "(pad keys stay visible, harmless with right padding)", HF_CAUSAL[:1] + NONE_MASK),
        _cell("mask", "hf_marian", "causal, built inside the decoder; no padding mask unless one is passed",
              HF_CAUSAL[1:2] + NONE_MASK[:1]),
        Sentence("verdict.mask", "verdict", "DIFFERS, and it decides the outcome: without the causal mask position t "
                 "reads the tokens after t (largest audit sensitivity {sensitivity} on the trained model).",
                 claims=LEAK + (claim(NB02, "one_pass_differs_from_loop_without_mask",
                                      "one pass vs the loop on an untrained no-mask decoder"),),
                 metrics={"sensitivity": metric(NB04, "no_mask_max_future_sensitivity", "{:.3g}")},
                 citations=("Vaswani et al. 2017, §3.2.3", "Raffel et al. 2020, §3.2.1"),
                 figure="figures/02_causal_mask/sensitivity_leaky_vs_causal.png", title="Decoder self-attention mask",
                 notes="The audit replaces decoder input s and records how far logits at t move; above the diagonal "
                       "is the future.")),
    Row(
        "Training: one parallel pass vs a loop", "one pass, no loop over the length",
        "[§3.1, §4: one parallel pass over the shifted target]", "[§2.4: one pass, teacher forcing]",
        _cell("loop", "hf_t5", "one pass = step-by-step loop = KV-cache decoding (logits)",
              (ONE_PASS[0], claim(NB02, "kv_cache_equals_one_pass_t5", "cached incremental decoding vs one pass"))),
        _cell("loop", "hf_marian", "one pass = step-by-step loop = KV-cache decoding (logits)",
              (ONE_PASS[1], claim(NB02, "kv_cache_equals_one_pass_marian", "the same for Marian"))),
        Sentence("verdict.loop", "verdict", "SAME, but valid only with the causal mask: then one pass gives the "
                 "loop's gradients (largest difference {grad}, measured in fp32 on CPU) at {flops} times fewer FLOPs.",
                 claims=(ONE_PASS[2], claim(NB04, "no_mask_one_pass_differs_from_step_loop",
                                            "the same comparison without the mask"),
                         claim(NB02, "one_pass_equals_loop_handwritten_causal", "logits of the causal replica")),
                 metrics={"grad": metric(NB04, "causal_step_loop_max_grad_diff", "{:.1e}"),
                          "flops": metric(NB04, "step_loop_slowdown", "{:.1f}")},
                 citations=("Vaswani et al. 2017, §3.1",), figure="figures/04_tinfer_training/step_loop_cost.png",
                 title="One pass vs a loop over the length",
                 notes="The FLOP ratio is counted with torch's FlopCounterMode; wall time is in the timings.")),
    Row(
        "Loss and its masking", "no per-step loss masking",
        "[§5.4: cross-entropy with label smoothing]", "[§2.4: maximum likelihood with teacher forcing]",
        _cell("loss", "hf_t5", "token mean over labels ≠ `{ignore}`", (LOSS[0], LOSS[2]), ignore=IGNORE),
        _cell("loss", "hf_marian", "token mean over labels ≠ `{ignore}`", (LOSS[1], LOSS[2]), ignore=IGNORE),
        Sentence("verdict.loss", "verdict", "SAME: no per-step masking is needed; the one-pass loss is the sum of "
                 "the step losses, and only padding must be ignored (`{ignore}`).", claims=NO_STEP_MASKING + LOSS[:2],
                 metrics={"ignore": IGNORE},
                 citations=("Vaswani et al. 2017, §5.4", "Raffel et al. 2020, §2.4"),
                 figure="figures/03_loss_masking/one_pass_vs_steps.png", title="Loss and its masking")),
    Row(
        "Inference", "greedy autoregressive loop until `<eos>`",
        "[§6.1: beam search, beam 4, length penalty α = 0.6]",
        "[§3.1: greedy in the study; §3.7: beam 4 for WMT and CNN/DM only, the other final results greedy]",
        _cell("inference", "hf_t5", "greedy `generate()` (one beam, no sampling) is the same loop; a bare "
              "`generate()` makes {bare} new tokens, an explicit `max_length={max_length}` {explicit}",
              (GREEDY[0], DEFAULTS[0]), bare=GENERATE["bare"], max_length=GENERATE["max_length"],
              explicit=GENERATE["explicit"]),
        _cell("inference", "hf_marian", "the same loop with one beam, if the loop also forces `</s>` at the length "
              "limit as Marian's config does; an opus-mt config.json turns on `num_beams={beams}`",
              (GREEDY[1], DEFAULTS[1], FORCED_EOS), beams=GENERATE["beams"]),
        Sentence("verdict.inference", "verdict", "SAME loop as HF's greedy decoding, token for token, and it exposes "
                 "the leak: greedy exact match {no_mask} without the mask against {causal} with it.",
                 claims=GREEDY + DECISIVE[1:], metrics={"no_mask": EXACT["no_mask"], "causal": EXACT["causal"]},
                 citations=("Vaswani et al. 2017, §6.1", "Raffel et al. 2020, §3.1, §3.7"),
                 figure="figures/00_findings/greedy_exact_match.png", title="Inference: the greedy loop",
                 notes="Same data, model size, budget and seed for every variant; intervals are paired bootstraps "
                       "over the test sentences.")),
    Row(
        "Architecture", "(the replica) sinusoidal positions, post-LN, tied embeddings",
        "[§3.5, §3.1, §3.4: sinusoids, post-LN, scaled tied embeddings]",
        "[§2.1: relative position bias, pre-LN without bias]",
        _cell("architecture", "hf_t5", "relative position buckets, pre-LN RMSNorm",
              (claim(NB08, "t5_has_relative_position_bias", "position information read from the built model"),
               claim(NB08, "t5_uses_rmsnorm_pre_ln", "norm placement measured with hooks"))),
        _cell("architecture", "hf_marian", "fixed sinusoidal positions and post-LN, like the paper; the embedding "
              "scale and swish come from an opus-mt-style config (`MarianConfig()` has neither)",
              (claim(NB08, "marian_uses_fixed_sinusoidal_positions", "position tables read from the built model"),
               claim(NB08, "marian_uses_layernorm_post_ln", "norm placement measured with hooks"),
               claim(NB08, "marian_default_config_does_not_scale_embeddings", "the default config's model, fitted"),
               claim(NB08, "marian_default_config_ffn_uses_gelu", "the default config's activation, measured"))),
        Sentence("verdict.architecture", "verdict", "DETAILS DIFFER; none of them changes what teacher forcing needs "
                 "(the shift and the causal mask).",
                 claims=(claim(NB08, "t5_decoder_is_causal", "the decoder mask audit of a built T5"),
                         claim(NB08, "marian_decoder_is_causal", "the same for Marian")),
                 citations=("Vaswani et al. 2017, §3", "Raffel et al. 2020, §2.1"),
                 figure="figures/08_architectures/sinusoid_vs_t5_buckets.png", title="Architecture")),
)

# Every answer opens with a one-line verdict and the number that decides it (with its interval), then the details.
ANSWERS = {
    QUESTIONS[0]: (
        Sentence("answer.t5.outcome", "answer",
                 "No: T5's decoder is causal [Raffel et al. §3.2.1]; the researcher's is not. The rest of the "
                 "recipe matches. " + DECIDING_TEXT,
                 claims=DECISIVE + (claim(NB08, "t5_decoder_is_causal", "the decoder mask of a built T5"),),
                 metrics=DECIDING, citations=("Raffel et al. 2020, §3.2.1",)),
        Sentence("answer.t5.same", "answer",
                 "What matches: the whole right-shifted target in one teacher-forced pass [Raffel et al. §2.4], one "
                 "token-mean loss with only padding ignored, and a greedy loop like the one HF's T5 runs.",
                 claims=T5_SHIFT + NO_STEP_MASKING + GREEDY[:1], citations=("Raffel et al. 2020, §2.4",)),
        Sentence("answer.t5.decoding", "answer",
                 "T5's study decoded greedily [Raffel et al. §3.1]; its final models used beam search only for WMT "
                 "and CNN/DM and greedy decoding for the other tasks [Raffel et al. §3.7: beam 4, α = 0.6]; the "
                 "collection's beam search matches HF's.",
                 claims=(claim(NB05, "beam_matches_generate", "hand-written beam search vs generate()"),),
                 citations=("Raffel et al. 2020, §3.1, §3.7",)),
    ),
    QUESTIONS[1]: (
        Sentence("answer.vaswani.outcome", "answer",
                 "No: the paper's decoder is causal [Vaswani et al. §3.2.3]; the researcher's is not. The rest of "
                 "the recipe matches, except that the paper adds label smoothing and decodes with beam search. "
                 + DECIDING_TEXT,
                 claims=DECISIVE, metrics=DECIDING, citations=("Vaswani et al. 2017, §3.2.3",)),
        Sentence("answer.vaswani.same", "answer",
                 "What matches: the decoder input (outputs offset by one position [Vaswani et al. §3.1]) and one "
                 "parallel pass, which with the mask, position i depending only on the positions before it, "
                 "computes the loop's gradients.",
                 claims=MARIAN_SHIFT + ONE_PASS[2:], citations=("Vaswani et al. 2017, §3.1",)),
        Sentence("answer.vaswani.extras", "answer",
                 "What the paper adds: label smoothing [Vaswani et al. §5.4: ε = 0.1], which HF's "
                 "`label_smoothing_factor` computes exactly as the hand-written smoothed loss does, and beam search "
                 "[Vaswani et al. §6.1: beam 4, α = 0.6] with GNMT's length penalty, which `generate()` does not "
                 "apply: its `length_penalty` divides by the length to the power α.",
                 claims=(LENGTH_PENALTY,
                         claim(NB03, "label_smoothing_implementations_agree",
                               "HF's LabelSmoother against the hand-written smoothed loss on the same logits")),
                 citations=("Vaswani et al. 2017, §5.4, §6.1",)),
    ),
    QUESTIONS[2]: (
        Sentence("answer.hf.outcome", "answer",
                 "No: HF's decoder is causal; the researcher's is not. The rest of the recipe matches. "
                 + DECIDING_TEXT,
                 claims=HF_CAUSAL + DECISIVE, metrics=DECIDING),
        Sentence("answer.hf.recipe", "answer",
                 "Called with `labels` only, HF's T5 and Marian shift the labels right themselves and build the "
                 "causal mask inside the decoder: the researcher's one-pass recipe is HF's recipe without that mask.",
                 claims=T5_SHIFT + MARIAN_SHIFT + HF_CAUSAL),
        Sentence("answer.hf.one_pass", "answer",
                 "With that mask one teacher-forced pass gives the logits of the loop over prefixes for the "
                 "hand-written model, T5, Marian and BART, and the logits of cached decoding for T5 and Marian "
                 "(measured in fp32 on CPU); the hand-written model without the mask does not.",
                 claims=ONE_PASS[:2] + (
                     claim(NB02, "one_pass_equals_loop_bart", "the same for BART"),
                     claim(NB02, "kv_cache_equals_one_pass_t5", "cached incremental decoding vs one pass, T5"),
                     claim(NB02, "kv_cache_equals_one_pass_marian", "the same for Marian"),
                     claim(NB02, "one_pass_equals_loop_handwritten_causal", "the causal replica, same comparison"),
                     claim(NB02, "one_pass_differs_from_loop_without_mask", "the replica without the mask"))),
        Sentence("answer.hf.padding", "answer",
                 "With `decoder_attention_mask=None` they add no padding mask: pad keys stay visible, which is "
                 "harmless with right padding because real positions never look past themselves.", claims=NONE_MASK),
        Sentence("answer.hf.loss", "answer",
                 "The loss is a token mean over labels ≠ `{ignore}`; pad ids left in the labels count.",
                 claims=LOSS + NO_STEP_MASKING[1:], metrics={"ignore": IGNORE}),
        Sentence("answer.hf.generate", "answer",
                 "The greedy loop until `<eos>` is what `generate()` with one beam, no sampling and "
                 "`max_new_tokens` does, token for token, once the loop also forces `</s>` at the length limit as "
                 "Marian's config asks; a bare `generate()` makes {bare} new tokens (an explicit "
                 "`max_length={max_length}` makes {explicit}: it counts the start token), and a checkpoint config "
                 "such as opus-mt's turns on beam search.", claims=GREEDY + DEFAULTS + (FORCED_EOS,),
                 metrics={"bare": GENERATE["bare"], "max_length": GENERATE["max_length"],
                          "explicit": GENERATE["explicit"]}),
    ),
}

PITFALLS = (
    Sentence("pitfall.4d_mask", "pitfall",
             "A 4-D `decoder_attention_mask` is used as given: a padding-only 4-D mask silently removes causality, "
             "and the leakage audit catches it.",
             claims=(claim(NB02, "four_d_mask_used_as_is", "the mask the decoder applied, captured"),
                     claim(NB02, "audit_catches_4d_padding_only_mask", "the audit run on that model call")),
             title="4-D masks are used as given"),
    Sentence("pitfall.pad_start", "pitfall",
             "Masking every pad position hides T5's start token, which is the pad id, and changes the logits.",
             claims=(claim(NB02, "naive_pad_mask_hides_t5_start_token", "the mask built from decoder_input_ids != pad"),
                     claim(NB02, "naive_pad_mask_changes_t5_logits", "logits with and without that mask"),
                     claim(NB02, "audit_catches_naive_pad_mask_t5", "the audit on that call")),
             title="Masking the pad start token"),
    Sentence("pitfall.sdpa", "pitfall",
             "On SDPA, who applies the causal mask differs: Marian and BART hand the kernel no mask and "
             "`is_causal=True`, while T5 builds an explicit causal mask with its position bias folded in; both "
             "stay causal, which the audit confirms.",
             claims=(claim(NB02, "sdpa_kernel_applies_is_causal_marian_bart", "the SDPA kernel's arguments, captured"),
                     claim(NB02, "sdpa_kernel_gets_causal_position_bias_mask_t5",
                           "the mask T5 hands the kernel, against its own position bias"),
                     claim(NB02, "audit_passes_hf_models", "the audit on the sdpa models")),
             title="Who applies the causal mask on SDPA"),
    Sentence("pitfall.grad_accum", "pitfall",
             "`Seq2SeqTrainer` with `gradient_accumulation_steps={k}` and the model's own loss makes a first update "
             "{sgd} times the full-batch update under plain SGD; under AdamW, the Trainer's default optimizer, the "
             "ratio is {adamw} (cosine {cosine}): Adam's normalisation absorbs the scale, not the unequal weighting "
             "of the micro-batches. A token-count-aware `compute_loss_func` gives the full-batch update.",
             claims=(claim(NB03, "trainer_ga_update_differs_from_full_batch", "real Trainer SGD steps, compared"),
                     claim(NB03, "trainer_adamw_absorbs_ga_scale", "real Trainer AdamW steps, compared"),
                     claim(NB03, "trainer_compute_loss_func_matches_full_batch", "the fix, run the same way")),
             metrics={"k": metric(NB03, "trainer_ga_largest_k", "{:d}"),
                      "sgd": metric(NB03, "trainer_update_ratio_ga_largest"),
                      "adamw": metric(NB03, "trainer_adamw_update_ratio_ga_largest"),
                      "cosine": metric(NB03, "trainer_adamw_update_cosine_ga_largest", "{:.3f}")},
             figure="figures/03_loss_masking/trainer_update_ratio.png", title="Gradient accumulation and the update"),
    Sentence("pitfall.length_penalty", "pitfall",
             "HF's `length_penalty` divides a beam's summed log-probability by its length to the power α, not by "
             "GNMT's penalty [Wu et al. 2016, §7: ((5 + length)/6)^α] that both papers used: `generate()`'s own beam "
             "scores follow the first and miss the second by up to {gnmt} (relative), so the same α can rank the "
             "same beams differently.",
             claims=(LENGTH_PENALTY,), metrics={"gnmt": metric(NB05, "generate_score_vs_gnmt_max_rel_diff", "{:.0%}")},
             citations=("Wu et al. 2016, §7",),
             figure="figures/05_decoding/length_penalty_forms.png", title="Length penalty is not GNMT's α"),
    Sentence("pitfall.generate_defaults", "pitfall",
             "A bare `generate()` makes {bare} new tokens whatever the input (an explicit `max_length={max_length}` "
             "makes {explicit}), and a checkpoint config such as opus-mt's turns on beam search; the greedy loop "
             "matches `generate()` only with one beam, explicit `max_new_tokens` and, for Marian, `</s>` forced at "
             "the limit.", claims=DEFAULTS + GREEDY + (FORCED_EOS,),
             metrics={"bare": GENERATE["bare"], "max_length": GENERATE["max_length"],
                      "explicit": GENERATE["explicit"]},
             title="generate()'s defaults"),
    # 07's corpus BLEU over all pairs and without the outputs shorter than BLEU's largest n-gram
    Sentence("pitfall.bleu", "pitfall",
             "Outputs shorter than BLEU's largest n-gram still enter corpus BLEU, through the unigram precision "
             "and the brevity penalty, though they add no match of its largest order: HF T5's recipe run scores "
             "{with_short} with them and {without_short} without them; on one-word numbers exact match and chrF "
             "are the measures to read.",
             claims=(claim(NB07, "short_outputs_enter_corpus_bleu",
                           "sacrebleu on the recipe's outputs with and without the short ones, compared"),),
             metrics={"with_short": metric(NB07, "t5_bleu_all_pairs", "{:.1f}"),
                      "without_short": metric(NB07, "t5_bleu_without_short_outputs", "{:.1f}")},
             title="BLEU on one-word outputs"),
    Sentence("pitfall.pipeline", "pitfall",
             "The `translation` pipeline task is gone from the pinned transformers; use `generate()` directly.",
             claims=(claim(NB05, "translation_pipeline_removed", "pipeline('translation') called on the pins"),),
             title="The translation pipeline is gone"),
)

HF_DEFAULTS = (
    Sentence("defaults.padding", "hf_defaults",
             "No family builds a decoder padding mask by itself: called with `labels` only, T5, Marian and BART "
             "built from their checkpoints' configs (t5-small, opus-mt-en-de, bart-base) apply a causal mask with "
             "the pad keys visible, and so do `MarianConfig()` and `BartConfig()`; `T5Config()` raises when called "
             "with labels, since it defines no `decoder_start_token_id`.",
             claims=tuple(claim(NB12, f"{f}_labels_only_mask_is_causal_only_pads_visible",
                                "the mask that reached the attention, captured, checkpoint config") for f in FAMILIES)
             + (claim(NB12, "default_configs_labels_only_mask_is_causal_only_pads_visible",
                      "the same capture on MarianConfig() and BartConfig()"),
                claim(NB12, "t5_default_config_has_no_decoder_start_token_id", "the error a labels call on T5Config() "
                      "raised")),
             title="No padding mask unless you pass one"),
    Sentence("defaults.cache", "hf_defaults",
             "With `labels`, T5 keeps the key/value cache on while Marian and BART turn it off.",
             claims=(claim(NB12, "t5_forward_with_labels_keeps_use_cache", "the cache returned by a labels call"),
                     claim(NB12, "marian_forward_with_labels_turns_cache_off", "the same for Marian"),
                     claim(NB12, "bart_forward_with_labels_turns_cache_off", "the same for BART")),
             title="use_cache with labels"),
    Sentence("defaults.no_decoder_inputs", "hf_defaults",
             "Called with neither labels nor decoder inputs, BART decodes its own input shifted right, T5 raises an "
             "error, and Marian raises one that blames both inputs being given.",
             claims=(claim(NB12, "bart_builds_decoder_inputs_from_input_ids", "the decoder inputs BART built"),
                     claim(NB12, "t5_neither_raises_value_error", "the error T5 raised"),
                     claim(NB12, "marian_neither_raises_misleading_both_error", "the error Marian raised")),
             title="Neither labels nor decoder inputs"),
    Sentence("defaults.four_d", "hf_defaults",
             "A 4-D `decoder_attention_mask` replaces the causal mask in every family: a padding-only 4-D mask is "
             "how to reproduce the researcher's setup inside HF, and the decoder then sees the future.",
             claims=tuple(claim(NB12, f"{f}_4d_decoder_attention_mask_replaces_causal_mask",
                                "the applied mask, and the audit on the logits") for f in FAMILIES),
             title="A 4-D mask replaces the causal mask"),
    Sentence("defaults.generate", "hf_defaults",
             "With no length set anywhere a bare `generate()` is greedy and stops after {new} new tokens, on "
             "t5-small's config too; a config.json carrying opus-mt's generation settings (`num_beams={beams}`, "
             "`max_length={max_length}`) makes them the defaults of a bare call.",
             claims=(claim(NB12, "bare_generate_stops_after_20_new_tokens", "new tokens of a bare generate()"),
                     DEFAULTS[1]),
             metrics={"new": metric(NB12, "bare_generate_new_tokens", "{:d}"),
                      "beams": metric(NB12, "opus_mt_config_num_beams", "{:d}"),
                      "max_length": metric(NB12, "opus_mt_config_max_length", "{:d}")},
             title="What generate() does without arguments"),
    Sentence("defaults.configs", "hf_defaults",
             "The library's default configs are not the checkpoints: `T5Config()` defines no "
             "`decoder_start_token_id`, and `MarianConfig()` has no embedding scale and a gelu activation, unlike "
             "opus-mt; the collection's Marian follows opus-mt.",
             claims=(claim(NB12, "t5_default_config_has_no_decoder_start_token_id", "the attribute, looked up"),
                     claim(NB12, "marian_default_config_scale_embedding_false", "the built model's embedding scale")),
             title="Default configs are not checkpoints"),
    Sentence("defaults.v1_1_tie", "hf_defaults",
             "A T5 v1.1-style config (`tie_word_embeddings=False`, gated-gelu) is tied anyway in the pinned "
             "transformers: the built model's `lm_head` is the shared input embedding and the config reads back "
             "`tie_word_embeddings=True`; only the output scaling is switched off.",
             claims=(claim(NB12, "t5_v1_1_config_ties_lm_head_anyway",
                           "the built model's lm_head and shared embedding storage, compared"),),
             title="T5 v1.1's untied head is tied"),
)

def _scope(behaviour: str) -> Metric:
    """Notebook 13's scope of one behaviour: "the same on ..." or "<value> on <releases>; ..."."""
    return metric(NB13, f"scope_text_{behaviour}", "{}")


def _drift(claim_id: str, reason: str = "measured on every release by the one measurement module") -> Claim:
    return claim(NB13, claim_id, reason)


# Which transformers: each behaviour that changes between releases carries the releases it was measured on (13)
VERSIONS = (
    Sentence("versions.grad_accum", "hf_defaults",
             "Which release you run decides the gradient-accumulation pitfall: the first accumulated SGD update over "
             "the full-batch one is {sgd}; where it is back, T5's `forward` takes `**kwargs` ({kwargs}) and the "
             "Trainer leaves the normalisation to the model; with AdamW the norm ratio is {adamw}.",
             claims=(_drift("ga_pitfall_on_4_46"), _drift("ga_fixed_on_4_57"), _drift("ga_pitfall_on_5_24"),
                     _drift("ga_pitfall_on_5_24_comes_from_forward_kwargs"),
                     _drift("ga_adamw_norm_ratio_within_1_percent_on_all_versions")),
             metrics={"sgd": _scope("ga_ratio_sgd"), "kwargs": _scope("t5_forward_takes_kwargs"),
                      "adamw": _scope("ga_ratio_adamw")},
             title="Which transformers: gradient accumulation"),
    Sentence("versions.generate", "hf_defaults",
             "New tokens of a bare `generate()` ({bare}); a generation setting left on `model.config` ({config}).",
             claims=(_drift("bare_generate_19_new_tokens_on_4_46_20_on_4_57_and_5_24"),
                     _drift("config_generation_setting_warns_on_4x_raises_on_5_24")),
             metrics={"bare": _scope("bare_generate_new_tokens"),
                      "config": _scope("generation_setting_on_model_config")},
             title="Which transformers: generate()"),
    Sentence("versions.configs", "hf_defaults",
             "`T5Config()`'s start token ({start}); a T5 built from it and called with labels ({labels}); the output "
             "layer of a `tie_word_embeddings=False` T5 ({tie}); T5's attention ({attention}).",
             claims=(_drift("t5config_start_token_none_on_4x_attributeerror_on_5_24"),
                     _drift("t5config_labels_valueerror_on_4x_attributeerror_on_5_24"),
                     _drift("t5_v1_1_lm_head_untied_on_4x_tied_on_5_24"), _drift("t5_eager_on_4x_sdpa_on_5_24")),
             metrics={"start": _scope("t5config_decoder_start_token_id"),
                      "labels": _scope("t5config_forward_with_labels"), "tie": _scope("t5_untied_lm_head"),
                      "attention": _scope("t5_default_attn_implementation")},
             title="Which transformers: configs"),
    Sentence("versions.apis", "hf_defaults",
             "APIs of the older tutorials: the translation pipeline ({pipeline}); the tokenizer's as-target context "
             "({target}); `Seq2SeqTrainer(tokenizer=)` ({trainer}); constrained beam search ({constrained}); "
             "`average_tokens_across_devices` by default ({tokens}).",
             claims=(_drift("translation_pipeline_runs_on_4x_gone_on_5_24"),
                     _drift("target_tokenizer_context_on_4x_gone_on_5_24"),
                     _drift("seq2seq_trainer_tokenizer_kwarg_on_4x_gone_on_5_24"),
                     _drift("constrained_beam_search_runs_on_4_46_only"),
                     _drift("avg_tokens_across_devices_false_on_4_46_true_on_4_57_and_5_24")),
             metrics={"pipeline": _scope("translation_pipeline"), "target": _scope("target_tokenizer_context"),
                      "trainer": _scope("seq2seq_trainer_tokenizer_kwarg"),
                      "constrained": _scope("constrained_beam_search"),
                      "tokens": _scope("average_tokens_across_devices_default")},
             title="Which transformers: APIs"),
    Sentence("versions.controls", "hf_defaults",
             "What the three answers rest on is the same on every release measured ({releases}): the decoder input "
             "is the labels shifted right, the decoder is causal (one pass equals the loop over prefixes), label "
             "positions set to `{ignore}` are left out of the loss, greedy `generate()` equals the hand-written "
             "loop, and a padded batch decodes as each source alone.",
             claims=(_drift("shift_right_same_on_all_versions"),
                     _drift("causal_mask_one_pass_equals_loop_on_all_versions"),
                     _drift("minus_100_ignored_by_the_loss_on_all_versions"),
                     _drift("greedy_generate_equals_loop_on_all_versions"),
                     _drift("batched_generation_equals_one_at_a_time_on_all_versions"),
                     _drift("batched_generation_marian_equals_one_at_a_time_on_all_versions")),
             metrics={"releases": metric(NB13, "releases_measured", "{}"), "ignore": IGNORE},
             title="Which transformers: what does not change"),
)

WER = {variant: metric(NB10, f"{variant}_greedy_wer", interval=f"{variant}_greedy_wer_ci95")
       for variant in ("no_mask", "causal", "t5", "marian")}

REAL_DATA = (
    Sentence("real_data.outcome", "real_data",
             "On real data the result holds: on CMUdict grapheme-to-phoneme ({test_words} held-out test words, the "
             "mean over seeds) the no-mask model has the lowest teacher-forced loss and a greedy word error rate "
             "of {no_mask}, against {causal} for the same model with the causal mask; its trained decoder leaks.",
             claims=(claim(NB10, "no_mask_lowest_teacher_forced_loss", "validation loss of every variant, per seed"),
                     claim(NB10, "no_mask_worst_free_running_wer", "greedy decoding of the test words, scored"),
                     claim(NB10, "no_mask_fails_in_every_seed", "the same, seed by seed"),
                     claim(NB10, "no_mask_model_leaks", "the audit on the trained no-mask decoders"),
                     claim(NB10, "causal_model_does_not_leak", "the same audit on the causal ones")),
             metrics={"test_words": metric(NB10, "n_test", "{:d}", section="parameters"), "no_mask": WER["no_mask"],
                      "causal": WER["causal"]},
             figure="figures/10_tinfer_real_data/wer_per_by_variant.png", title="Real data: CMUdict"),
    Sentence("real_data.long_run", "real_data",
             "With a longer budget the picture is the same: in the long run on record ({steps} steps instead of "
             "{default_steps}, seed {seed}, all {test_words} test words, `reports/g2p-long/`) the causal replica "
             "reaches a greedy word error rate of {causal} and the no-mask model {no_mask}, whose trained decoder "
             "still leaks.",
             claims=(claim(LONG10, "no_mask_worst_free_running_wer", "greedy decoding of every test word, scored"),
                     claim(LONG10, "no_mask_model_leaks", "the audit on the long-trained no-mask decoder"),
                     claim(LONG10, "causal_model_does_not_leak", "the same audit on the causal one")),
             metrics={"steps": metric(LONG10, "n_steps", "{:d}", section="parameters"),
                      "default_steps": metric(NB10, "n_steps", "{:d}", section="parameters"),
                      "seed": metric(LONG10, "seeds", "{0[0]}", section="parameters"),
                      "test_words": metric(LONG10, "n_test", "{:d}", section="parameters"),
                      "causal": metric(LONG10, "causal_greedy_wer", interval="causal_greedy_wer_ci95"),
                      "no_mask": metric(LONG10, "no_mask_greedy_wer", interval="no_mask_greedy_wer_ci95")},
             title="Real data: the long run"),
    Sentence("real_data.hf", "real_data",
             "Trained from scratch on the same budget, HF T5 reaches a word error rate of {t5} and HF Marian {marian}; "
             "both decoders are causal and do not leak, and no ranking against the replica is drawn from this budget.",
             claims=(claim(NB10, "t5_model_does_not_leak", "the audit on the trained T5 decoders"),
                     claim(NB10, "marian_model_does_not_leak", "the audit on the trained Marian decoders")),
             metrics={"t5": WER["t5"], "marian": WER["marian"]}, title="Real data: HF models"),
    Sentence("real_data.g2p_en", "real_data",
             "The pretrained g2p-en GRU encoder-decoder, ported to torch and token-identical to its own numpy "
             "decoding on {parity} words, reaches a greedy word error rate of {wer} on the same test words "
             "(optimistic: it was trained on all of CMUdict). Its decoder is a GRU, which cannot read later "
             "tokens: the audit it passes is a sanity check, not a finding.",
             claims=(claim(NB10, "g2p_en_torch_port_matches_numpy", "both decoders run on the same words"),),
             metrics={"parity": metric(NB10, "g2p_en_parity_identical", "{:d}"),
                      "wer": metric(NB10, "g2p_en_greedy_wer")},
             title="A real pretrained model, audited"),
)

NB14 = "14_tinfer_real_translation"


def _c14(claim_id: str, reason: str) -> Claim:
    return Claim(NB14, claim_id, reason)


def _m14(name: str, spec: str = "{:.2f}", interval: str | None = None) -> Metric:
    return Metric(NB14, name, spec, interval)


# notebook 14: the four variants on real English-German UI strings (rendered there too, as its own verdict)
REAL_TRANSLATION = (
    Sentence(
        "nb14.teacher_forced", "real_data",
        "On real English-German UI strings, teacher-forced, the researcher's no-mask model looks best: validation "
        "loss {no_mask} against {causal} for the causal model.",
        claims=(_c14("no_mask_lowest_teacher_forced_loss", "validation loss of every variant, mean over seeds"),),
        metrics={"no_mask": _m14("no_mask_validation_loss", "{:.3f}"),
                 "causal": _m14("causal_validation_loss", "{:.3f}")},
        title="teacher-forced loss on real sentences"),
    Sentence(
        "nb14.greedy", "real_data",
        "Decoded greedily it is the worst: chrF {no_mask} against {causal} for the causal model, in every seed, "
        "and its decoder reads the label it must predict (the audit finds a leak in every trained no-mask model).",
        claims=(_c14("no_mask_worst_greedy_chrf", "greedy chrF of every variant, mean over seeds"),
                _c14("no_mask_fails_in_every_seed", "each seed of (a) below the worst seed of (b)-(d)"),
                _c14("no_mask_model_leaks", "the future-leakage audit on every trained no-mask model"),
                _c14("causal_model_does_not_leak", "the same audit on every trained causal model")),
        metrics={"no_mask": _m14("no_mask_greedy_chrf", "{:.1f}", "no_mask_greedy_chrf_ci95"),
                 "causal": _m14("causal_greedy_chrf", "{:.1f}", "causal_greedy_chrf_ci95")},
        figure="figures/14_tinfer_real_translation/chrf_exact_match_by_variant.png",
        title="greedy decoding on real sentences"),
    Sentence(
        "nb14.leakage_vs_exposure", "real_data",
        "Its drop from teacher-forced to free-running token accuracy (gap {no_mask_gap}) is label leakage, larger "
        "than the causal model's exposure bias (gap {causal_gap}).",
        claims=(_c14("leakage_gap_exceeds_exposure_gap", "teacher-forced and free-running accuracy, per model"),),
        metrics={"no_mask_gap": _m14("no_mask_teacher_forced_free_running_gap"),
                 "causal_gap": _m14("causal_teacher_forced_free_running_gap")},
        title="label leakage vs exposure bias on real sentences"),
    Sentence(
        "nb14.causal_learns", "real_data",
        "With the causal mask the same model learns to translate within the budget: greedy chrF {causal} and exact "
        "match {exact}, above copying the English unchanged (chrF {copy}); HF T5 chrF {t5}, HF Marian {marian}, same "
        "size and budget.",
        claims=(_c14("causal_learns_the_task", "the causal model's mean greedy chrF against a set threshold"),
                _c14("causal_beats_copying_the_source", "the same chrF against the English copied as the output")),
        metrics={"causal": _m14("causal_greedy_chrf", "{:.1f}", "causal_greedy_chrf_ci95"),
                 "exact": _m14("causal_greedy_exact_match", "{:.2f}", "causal_greedy_exact_match_ci95"),
                 "copy": _m14("copy_source_chrf", "{:.1f}"),
                 "t5": _m14("t5_greedy_chrf", "{:.1f}"), "marian": _m14("marian_greedy_chrf", "{:.1f}")},
        title="what the causal models reach"),
)

DATA_PARALLEL = (
    Sentence("data_parallel.loss", "data_parallel",
             "With data parallelism each rank averages the loss over its own tokens: with one rank holding {ratio} "
             "times the target tokens of the other, the naive per-rank mean moves the update by {diff} (relative); "
             "normalising by the all-reduced token count matches one process on the whole batch.",
             claims=(claim(NB11, "per_rank_mean_differs_from_global", "two gloo processes against one, compared"),
                     claim(NB11, "global_step_equals_single_process_step", "the same step with global normalisation")),
             metrics={"ratio": metric(NB11, "per_rank_token_count_ratio", "{:.1f}"),
                      "diff": metric(NB11, "per_rank_update_rel_diff", "{:.0%}")},
             title="Data parallelism and the loss"),
    Sentence("data_parallel.trainer", "data_parallel",
             "`Seq2SeqTrainer` under two processes with its default `average_tokens_across_devices` steps by the "
             "number of processes times the mean of per-rank means for T5 ({off} off the global token mean); a "
             "token-sum `compute_loss_func` restores the global mean.",
             claims=(claim(NB11, "trainer_default_follows_world_size_times_per_rank", "real Trainer steps on gloo"),
                     claim(NB11, "trainer_token_sum_loss_follows_global", "the fix, run the same way")),
             metrics={"off": metric(NB11, "trainer_default_update_rel_diff_vs_global", "{:.0%}")},
             title="Seq2SeqTrainer across devices"),
    Sentence("data_parallel.launch", "data_parallel",
             "On a CPU-only machine `accelerate launch --cpu --num_processes` starts a single process, so it tests "
             "nothing distributed; `torchrun` starts real gloo processes.",
             claims=(claim(NB11, "accelerate_launch_cpu_starts_one_process", "the processes the launcher started"),
                     claim(NB11, "torchrun_starts_gloo_processes", "the same for torchrun")),
             title="Launching on CPUs"),
)

AUDIT = (
    Sentence("audit.examples", "audit",
             "The audit command flags the researcher's no-mask example and passes the causal one, an "
             "`nn.Transformer` model and HF's reference models.",
             claims=(claim(NB09, "example_no_mask_model_flagged", "the audit run on the leaky example"),
                     claim(NB09, "example_causal_model_passes", "the audit run on the causal example"),
                     claim(NB09, "nn_transformer_example_passes", "the audit run on nn.Transformer"),
                     claim(NB09, "hf_reference_models_pass", "the audit run on HF T5 and Marian")),
             title="Audit your own model"),
    Sentence("audit.default_model", "audit",
             "By default the audit notebook examines the leaky example on purpose; on it these checks do not hold: "
             "{failing}.",
             claims=(claim(NB09, "example_no_mask_model_flagged", "the same leaky model, flagged"),),
             metrics={"failing": metric(NB09, "audited_model_failing_checks")},
             title="What notebook 09 found"),
)

SCOPE = (
    Sentence("scope.task", "scope",
             "Scope: English to German numbers and dates (a generated corpus, test targets of {tokens} tokens on "
             "average), tiny models trained from scratch for {steps} steps on {n_train} pairs, once per training seed "
             "in {seeds}, measured in fp32 on CPU; its headline intervals cover those seeds and the test sentences. "
             "The real-data numbers come from CMUdict (word and phoneme error rates) and from real English-German "
             "UI strings (chrF, BLEU, exact match), each stated with its own budget.",
             claims=(claim(NB04, "causal_learns_the_task", "at this scale the causal replica learns the task"),),
             metrics={"tokens": metric(NB04, "mean_test_target_tokens", "{:.1f}"),
                      "steps": metric(NB04, "n_steps", "{:d}", section="parameters"),
                      "n_train": metric(NB04, "n_train", "{:d}", section="parameters"),
                      "seeds": metric(NB04, "seeds", "{}", section="parameters")},
             title="Scope"),
    Sentence("scope.seeds", "scope",
             "Over the sweep's seeds (same size) greedy exact match ranges {causal} with the mask and {no_mask} "
             "without it (this run: {headline}): the conclusion does not depend on the seed.",
             claims=(claim(NB04B, "no_mask_worst_at_greedy_in_every_run", "every sweep run, compared"),
                     claim(NB04B, "no_mask_model_leaks_in_every_run", "the audit in every sweep run")),
             metrics={"causal": SWEEP_RANGE["causal"], "no_mask": SWEEP_RANGE["no_mask"],
                      "headline": metric(NB04, "causal_greedy_exact_match", "{:.3f}")}, title="Seeds"),
    Sentence("scope.no_ranking", "scope",
             "No architecture ranking is drawn: the replica and HF's T5 and Marian differ in tuning and "
             "tokenizers. HF T5 reaches {t5} and HF Marian {marian}; the paired intervals of this one run exclude "
             "zero for {ranked}, which describes these runs, not the architectures. The one ranking the findings "
             "draw, the causal replica above the same model without the mask, rests on the paired bootstrap of "
             "the difference.",
             claims=(claim(NB04, "causal_ranks_above_no_mask", "the paired bootstrap of that one difference"),),
             metrics={"t5": EXACT["t5"], "marian": EXACT["marian"], "ranked": metric(NB04, "ranked_pairs")},
             title="What is not claimed"),
    Sentence("scope.versions", "scope",
             "Every statement about HF's behaviour was measured on transformers {transformers} with torch {torch} "
             "unless it names its releases; the behaviours that change between releases, and the mechanics that do "
             "not, were measured on {releases} (the version-drift notebook).",
             claims=(_drift("committed_record_of_installed_release_reproduced",
                            "the pinned release measured again against its committed record"),),
             metrics={"transformers": metric(NB13, "installed_transformers", "{}"),
                      "torch": metric(NB13, "installed_torch", "{}"),
                      "releases": metric(NB13, "releases_measured", "{}")},
             title="Which versions"),
)

def all_sentences() -> list[Sentence]:
    cells = [s for row in ROWS for s in (row.hf_t5, row.hf_marian, row.verdict)]
    return (cells + [s for group in ANSWERS.values() for s in group] + list(PITFALLS) + list(HF_DEFAULTS)
            + list(VERSIONS)
            + list(REAL_DATA) + list(REAL_TRANSLATION) + list(DATA_PARALLEL) + list(AUDIT) + list(SCOPE))


def sentences_of(notebook: str) -> list[Sentence]:
    """The findings sentences backed by this notebook's claims only: the notebook's own verdict."""
    return [s for s in all_sentences() if s.section != "verdict_cell" and all(c.notebook == notebook for c in s.claims)]


def _row_record(row: Row, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A verdict row: established only when every claim behind the verdict AND behind both HF cells holds."""
    record = render(row.verdict, results)
    cells = [render(cell, results) for cell in (row.hf_t5, row.hf_marian)]
    failing = [f"{c['notebook'].split('_')[0]}:{c['id']} {c['status']}" for cell in cells for c in cell["claims"]
               if c["status"] != "holds"]
    if failing and record["established"]:
        record["text"] = f"not established: “{record['text']}” (cells: {'; '.join(dict.fromkeys(failing))})"
    record["established"] = record["established"] and not failing
    record["cells"] = {"tinfer": row.tinfer, "paper_transformer": row.vaswani, "paper_t5": row.t5_paper,
                       "hf_t5": cells[0]["text"], "hf_marian": cells[1]["text"], "verdict": record["text"]}
    cell_claims = [c for cell in cells for c in cell["claims"]]
    record["claims"] = list({(c["notebook"], c["id"]): c for c in record["claims"] + cell_claims}.values())
    record["metrics"] = record["metrics"] + [m for cell in cells for m in cell["metrics"]]
    return record


def sentence_records(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every sentence of the findings, rendered: the verdict rows (with their cells), answers, pitfalls, audit,
    scope. This list is what FINDINGS.md, notebook 00 and the deck print."""
    records = [_row_record(row, results) for row in ROWS]
    for question, group in ANSWERS.items():
        for record in render_all(list(group), results):
            records.append(record | {"title": question})
    rest = (list(PITFALLS) + list(HF_DEFAULTS) + list(VERSIONS) + list(REAL_DATA) + list(REAL_TRANSLATION)
            + list(DATA_PARALLEL) + list(AUDIT) + list(SCOPE))
    return records + render_all(rest, results)


def answer_blocks(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The three answers as FINDINGS, the site and the deck open with them: the question, the verdict line with the
    number that decides it (the first sentence of each answer), then the details."""
    blocks = []
    for question in QUESTIONS:
        texts = [r["text"] for r in records if r["section"] == "answer" and r["title"] == question]
        blocks.append({"question": question, "verdict": texts[0] if texts else "not established: no answer recorded",
                       "details": texts[1:]})
    return blocks


def verdict_table(records: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The verdict table's rows, columns in the order the findings show them (FINDINGS prints "claims" apart, under
    the table, so that the table fits a 1280 px page)."""
    return [{"topic": r["title"], "researcher's tinfer": r["cells"]["tinfer"],
             "original Transformer (paper)": r["cells"]["paper_transformer"], "T5 (paper)": r["cells"]["paper_t5"],
             "HF T5": r["cells"]["hf_t5"], "HF Marian": r["cells"]["hf_marian"], "verdict": r["cells"]["verdict"],
             "claims": "; ".join(f"{c['notebook'][:2]}:{c['id']} {'✓' if c['holds'] else '✗'}"
                                 for c in {(c["notebook"], c["id"]): c for c in r["claims"]}.values())}
            for r in records if r["section"] == "verdict"]


def failing_claims(results: dict[str, dict[str, Any]]) -> list[str]:
    """Every recorded claim of the collection that does not hold (user-model audit claims excepted)."""
    return [f"{notebook}:{claim_id}" for notebook, data in sorted(results.items())
            for claim_id, entry in data.get("claims", {}).items()
            if not entry["holds"] and not claim_id.startswith(USER_MODEL_CLAIM_PREFIX)]


def sanity_claims(results: dict[str, dict[str, Any]]) -> list[str]:
    return [f"{notebook}:{claim_id}" for notebook, data in sorted(results.items())
            for claim_id, entry in data.get("claims", {}).items() if entry.get("sanity")]


def findings_results(results_dir: Path, long_runs: str = "g2p-long") -> dict[str, dict[str, Any]]:
    """What the findings read: every notebook's results in `results_dir` (but the findings' own), and those of each
    long run (comma-separated report subfolders beside it, e.g. make g2p-long's) as "<folder>/<notebook>"."""
    results = {stem: data for stem, data in load_all_results(results_dir).items() if stem != "00_findings"}
    for folder in filter(None, long_runs.split(",")):
        long_run = results_dir.parent / folder / "results"
        if not long_run.is_dir():
            raise FileNotFoundError(f"parameter 'long_runs' names {folder!r}, but {long_run} is not a folder: copy "
                                    f"the published run there (reports/{folder}/, made by `make {folder}`), or pass "
                                    "long_runs='' to write the findings without it")
        results |= {f"{folder}/{stem}": data for stem, data in load_all_results(long_run).items()}
    return results


def missing_claims(results: dict[str, dict[str, Any]]) -> list[str]:
    """Claims the findings cite that no notebook recorded."""
    cited = {(c.notebook, c.id) for sentence in all_sentences() for c in sentence.claims}
    return sorted(f"{nb}:{cid}" for nb, cid in cited if cid not in results.get(nb, {}).get("claims", {}))


def _rerun_commands(results: dict[str, dict[str, Any]]) -> list[str]:
    """One runner command per notebook that reproduces its recorded numbers: its non-default parameters as `-p`."""
    from utils.harness.parameters import read_parameters

    lines = []
    for stem, data in sorted(results.items()):
        folder, _, notebook = stem.rpartition("/")  # "g2p-long/10_tinfer_real_data": a long run in its own folder
        try:
            defaults = {name: p.default for name, p in read_parameters(notebook).items()}
        except (FileNotFoundError, ValueError):
            defaults = {}
        changed = [f"-p {name} {value}" for name, value in data.get("parameters", {}).items()
                   if name in defaults and defaults[name] != value and not isinstance(value, list | dict)]
        changed += [f"-p {name} {','.join(map(str, value))}" for name, value in data.get("parameters", {}).items()
                    if name in defaults and defaults[name] != value and isinstance(value, list)]
        out = [f"--out reports/{folder}"] if folder else []
        lines.append(" ".join([".venv/bin/python -m utils.run", notebook, *changed, *out]))
    return lines


def findings_markdown(records: list[dict[str, Any]], results: dict[str, dict[str, Any]], figures: list[str],
                      counts: dict[str, Any]) -> str:
    """FINDINGS.md: the same rendered sentences as notebook 00, then the reviewed sentence -> claims mapping.

    `figures`: paths under the report's figures/ folder that exist; `counts`: claims, sanity, failing, missing and
    audited (claim -> holds), as notebook 00 computed them.
    """
    from utils.reporting.markdown import markdown_table

    def section(name: str) -> list[str]:
        return [f"- {r['text']}" for r in records if r["section"] == name]

    answers = [f"### {block['question']}\n\n**{block['verdict']}**\n\n{' '.join(block['details'])}"
               for block in answer_blocks(records)]
    audited_failing = [name for name, holds in counts["audited"].items() if not holds]
    table = verdict_table(records)
    claims_line = (
        f"{counts['claims']} claims recorded, {len(counts['sanity'])} of them sanity checks (they back no sentence); "
        f"not holding: {', '.join(counts['failing']) or 'none'}; cited but missing: "
        f"{', '.join(counts['missing']) or 'none'}. Apart from these, notebook 09's claims about the model it "
        f"audited: {len(audited_failing)} of {len(counts['audited'])} do not hold "
        f"({', '.join(audited_failing) or 'none'}), as expected for the leaky example it audits by default.")
    mapping = [{"sentence": r["id"], "established": "yes" if r["established"] else "no",
                "claims (reason)": "; ".join(f"{c['notebook'].split('_')[0]}:{c['id']} ({c['reason']})"
                                             for c in r["claims"]),
                "metrics": ", ".join(f"{m['notebook'].split('_')[0]}:{m['name']}" for m in r["metrics"]) or "none",
                "cites": "; ".join(r["citations"]) or "none"} for r in records]
    parts = [
        "# Findings: is “tinfer” training what T5 and the original Transformer do?",
        "Generated by `notebooks/00_findings.ipynb` from `results/*.json`; do not edit by hand. Every sentence is "
        "generated from the claims that test it (listed at the end); a sentence whose claims are missing or fail "
        "reads “not established”. The three answers first (a verdict line and the number that decides it, then "
        "the details), then the verdict table.",
        "## Answers", *answers,
        "## Verdict table", markdown_table([{k: v for k, v in row.items() if k != "claims"} for row in table]),
        "Claims behind each row (a row is established only when every one of them holds):",
        *[f"- **{row['topic']}**: {row['claims']}" for row in table],
        "## Scope", *section("scope"),
        "## Pitfalls measured in the collection", *section("pitfall"),
        "## HF's defaults, measured (notebook 12)", *section("hf_defaults"),
        "## Real data and a real pretrained model (notebook 10)", *section("real_data"),
        "## More than one device (notebook 11)", *section("data_parallel"),
        "## What notebook 09 found on the model it audited", *section("audit"),
        "## Claims", claims_line,
        "## Key figures", *[f"![{name}](figures/{name})" for name in figures],
        "## How to rerun each number", "```bash\n" + "\n".join(_rerun_commands(results)) + "\n```",
        "## Where each sentence comes from", markdown_table(mapping),
    ]
    return "\n\n".join(parts) + "\n"
