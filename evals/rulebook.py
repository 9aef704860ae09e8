"""The reference agent's rule book: from what a run shows to the code that usually causes it.

Written the way an ML engineer would write a debugging checklist for a GPT training codebase,
from general knowledge of how training breaks, not from any answer key:

* SUSPECTS: code constructs worth looking at (a regular expression for the construct, the
  files such code lives in) with the test that says the construct is wrong as written (a bad
  form of the line, an order that must hold inside its function, or a construct that must be
  there) and the cause, in an engineer's words, to name when it is the culprit.
* RULES: a symptom class (and optionally words in the incident summary or a view) -> the views
  to ask for and the suspects to walk, most likely first.
* CRASH_CAUSES: exception text -> what it usually means, for a crash whose origin a traceback
  names.

Code review uses SUSPECTS alone: every suspect whose construct occurs in the snippet's file is
tested on it, and a bad line inside the snippet is the diagnosis.
"""

import re
from dataclasses import dataclass
from typing import Callable

STEP = r"(\bscaler\.step\(\s*optimizer|\boptimizer\.step\()"  # the optimizer step, with or without a loss scaler

# ------------------------------------------------------------------------------------------
# checks a regular expression cannot say well


def call_argument(line, name):
    """The text inside the parentheses of the first call `name(` on the line ('' if none)."""
    start = line.find(name + "(")
    if start < 0:
        return None
    depth, i = 0, start + len(name)
    for j in range(i, len(line)):
        if line[j] == "(":
            depth += 1
        elif line[j] == ")":
            depth -= 1
            if depth == 0:
                return line[i + 1:j]
    return line[i + 1:]


def eps_outside_sqrt(line, before=""):
    """A normaliser's rsqrt/sqrt of a mean of squares with no epsilon inside it: rsqrt(0) is inf."""
    for name in ("rsqrt", "sqrt"):
        argument = call_argument(line, name)
        if argument is not None and ("pow(2)" in argument or "**2" in argument or "square" in argument
                                     or ".mean(" in argument) and "eps" not in argument:
            return True
    return False


def val_loader_augmented(line, before=""):
    """A loader over held-out data built with the training flag (random crops, shuffling)."""
    return bool(re.search(r"\btrain\s*=\s*True", line)) and bool(re.search(r"\bval|held", before + line))


def softmax_into_loss(line, before=""):
    """Probabilities where logits belong: softmax on the head's output, or a softmax that is the
    first argument of a cross_entropy call (on its line or opened on the lines before)."""
    if "softmax" not in line:
        return False
    argument = call_argument(line, "cross_entropy")
    opened_before = bool(re.search(r"cross_entropy\(\s*$", before))
    return (bool(argument and "softmax" in argument) or "lm_head" in line or opened_before
            or bool(re.search(r"\blogits\s*=.*softmax", line)))


# ------------------------------------------------------------------------------------------
# suspects


@dataclass(frozen=True)
class Suspect:
    """A code construct to look for and the test that says it is wrong.

    `pattern` finds the construct (a search_code regex); `files` are where such code lives.
    The construct is wrong (confirmed) when its line matches `bad`, when `must_follow` (a regex)
    occurs in its function only after it, when `must_precede` occurs in its function only before
    it, or when `requires` (a regex) is missing from its function. `if_absent`: when the
    construct is nowhere in a file, that is the bug, blamed on the line matching this regex.
    `context`: the order, requires and absence tests apply only in a function (for absence, a
    file) that matches it: no grad_accum, no need to divide by it.
    Found but not confirmed, the construct is still a place to point at when nothing is."""
    name: str
    pattern: str
    files: tuple[str, ...]
    cause: str
    bad: str | Callable[[str], bool] | None = None
    must_follow: str | None = None
    must_precede: str | None = None
    requires: str | None = None
    if_absent: str | None = None
    context: str | None = None
    absent_cause: str | None = None  # the cause to name when the construct is missing rather than wrong
    evidence: tuple[str, ...] = ()  # words in the summary or views that point here
    fix: tuple[str, str] | None = None  # (regex, replacement) for a confirmed bad line: a safe mechanical fix


TRAIN = ("scripts/base_train.py", "scripts/chat_sft.py")
MODEL = ("picochat/gpt.py",)
OPTIM = ("picochat/optim.py",)
DATA = ("picochat/dataloader.py",)
ENGINE = ("picochat/engine.py",)
EVAL = ("scripts/base_eval.py",)

SUSPECTS = {s.name: s for s in (
    # --- the optimizer step: order of backward, clip, step, schedule, clear -----------------
    Suspect("zero_grad_placement", r"\.zero_grad\(", TRAIN,
            "optimizer.zero_grad() is in the wrong place relative to optimizer.step(): the gradients are "
            "cleared (zeroed) before the step uses them, or not cleared between steps so they accumulate; "
            "zero_grad must run once per step, after the optimizer step and before the next backward",
            must_follow=STEP, if_absent=STEP, context=r"\.backward\(", evidence=("barely moved", "grad norm"),
            absent_cause="optimizer.zero_grad() is missing from the training loop: the gradients are never cleared, "
                         "so every backward accumulates into .grad and each step applies the sum of all past grads"),
    Suspect("clip_after_step", r"clip_grad_norm", TRAIN,
            "gradient clipping runs after the optimizer step, too late: the step used unclipped gradients; "
            "clip_grad_norm must come before the step (after unscale)",
            must_precede=STEP, evidence=("grad norm",)),
    Suspect("scheduler_order", r"\bscheduler\.step\(", TRAIN,
            "scheduler.step() is called before optimizer.step(): the learning-rate schedule runs one step "
            "ahead (off by one) and PyTorch warns about the order; step the scheduler after the optimizer",
            must_follow=STEP, if_absent=STEP, context=r"\bscheduler\b",
            evidence=("lr_scheduler.step()", "learning rate"),
            absent_cause="scheduler.step() is never called in the training loop: the learning-rate schedule "
                         "(warmup and decay) never advances, the lr stays constant at its first value"),
    Suspect("scaler_update", r"\bscaler\.update\(", TRAIN,
            "the loss scaler (GradScaler) is never updated: scaler.update() must run every step after "
            "scaler.step, or the scale is never adjusted and unscale_ fails on the next step",
            if_absent=r"\bscaler\.step\(", context="GradScaler", evidence=("unscale_", "GradScaler", "scaler")),
    Suspect("scaler_in_loop", r"GradScaler\(", TRAIN,
            "the loss scaler (GradScaler) is constructed anew every step inside the loop: its scale is reset each "
            "step instead of being updated, so it never adapts",
            bad=r"^\s{8,}\w+\s*=\s*torch\.(amp|cuda\.amp)\.GradScaler\(", evidence=("scaler",)),
    Suspect("grad_accum_scaling", r"\.backward\(", TRAIN,
            "with gradient accumulation the micro-batch loss is not divided by the number of accumulation "
            "steps, so the gradients are the sum of the micro-batch gradients, not their mean (scale the "
            "loss by 1 / grad_accum_steps before backward)",
            requires=r"/\s*grad_accum|/=\s*grad_accum", context="grad_accum", evidence=("grad norm",)),
    Suspect("loss_graph_kept", r"\+=\s*[\w.]*loss\w*(\.\w+\(\))?\s*(#.*)?$", TRAIN,
            "a loss tensor is accumulated with +=, keeping its autograd graph alive every step (a memory "
            "leak): sum loss.detach() or loss.item() instead",
            bad=r"\+=\s*[\w.]*loss\w*\s*(#.*)?$", evidence=("memory", "climbs")),
    Suspect("eval_no_grad", r"def evaluate|^\s*torch\.(no_grad|inference_mode)\(\)\s*$", TRAIN,
            "the evaluation runs with autograd enabled (no torch.no_grad / inference_mode around the "
            "validation forward passes), so every eval batch keeps its graph and memory; decorate "
            "evaluate with @torch.no_grad()",
            bad=r"^\s*torch\.no_grad\(\)\s*$|^\s*torch\.inference_mode\(\)\s*$", requires=r"no_grad|inference_mode",
            evidence=("peak memory",)),
    Suspect("eval_mode_restored", r"\bmodel\.eval\(\)", TRAIN,
            "after evaluation the model is left in eval mode: model.train() is not restored, so training "
            "continues with dropout off (train mode never comes back)",
            requires=r"^    model\.train\(\)"),
    Suspect("early_stop_on_train", r"best_val_loss|evaluate\(", TRAIN,
            "early stopping / best-model selection uses the training loss or the train loader instead "
            "of the validation loss, so it tracks train, not held-out data",
            bad=r"evaluate\([^)]*train_loader|best_val_loss\s*(,[^=]*)?=\s*step_loss|step_loss[^\n]*<\s*best_val_loss"),
    Suspect("epoch_metric_reset", r"current_epoch\s*(,[^=]*)?=\s*epoch", TRAIN,
            "the running epoch metric (loss sum and step count) is not reset at the epoch boundary, so "
            "the per-epoch mean carries the previous epochs' sum",
            bad=r"^(?!.*0\.0).*current_epoch\s*(,[^=]*)?=\s*epoch", evidence=("epoch",)),
    Suspect("lr_times_world_size", r"configure_optimizer\(|\blr\s*=", TRAIN,
            "the learning rate is multiplied by the world size (number of ranks, the linear scaling rule) "
            "although the global batch is fixed: the lr is too large",
            bad=r"world_size", evidence=("learning rate",)),
    Suspect("weight_decay_scheduled", r"weight_decay", TRAIN,
            "the weight decay is changed inside the training loop to follow the lr schedule / warmup; "
            "weight decay should stay constant (the scheduler already scales lr)",
            bad=r"\[\s*[\"']weight_decay[\"']\s*\]\s*=", evidence=("weight decay",)),
    Suspect("checkpoint_every_step", r"save_every|save_checkpoint\(", TRAIN,
            "the checkpoint condition saves every step (the periodic save interval check is wrong)",
            bad=r"max\(\s*args\.save_every|%\s*max\("),
    # --- optimizer and schedule ------------------------------------------------------------
    Suspect("params_not_optimised", r"AdamW\(|SGD\(|^\s*elif ", OPTIM,
            "some parameters are never given to the optimizer (a param group is dropped or a branch "
            "misses them, e.g. the embedding or the norm gains), so they stay frozen / never updated",
            bad=r"AdamW\(\s*(groups\[|decay\b|\[\s*\{[^}]*decay\b[^}]*\}\s*\])|^\s*elif\s+param\.dim\(\)\s*<",
            requires=r"[\"']params[\"']\s*:\s*no_decay", context="no_decay", evidence=("grad norm",)),
    Suspect("lr_schedule_shape", r"def lr_multiplier|def get_lr|^\s*return 1(\.0)?\s*$", OPTIM,
            "the learning-rate schedule has no decay after warmup: lr_multiplier stays constant at the "
            "peak instead of the cosine decay",
            bad=r"^\s*return 1(\.0)?\s*$", requires=r"cos\(", evidence=("learning rate",)),
    Suspect("grad_norm_formula", r"total_norm\s*=", OPTIM,
            "the global gradient norm is computed wrongly: it must be the sqrt of the sum of squares of "
            "all gradients (the L2 norm), not a sum of per-tensor norms or the sum without the square root",
            bad=r"total_norm\s*=\s*(?!.*sqrt)|sum\([^)]*\.norm\(", evidence=("grad norm",)),
    # --- the model --------------------------------------------------------------------------
    Suspect("causal_mask", r"\.tril\(|\.triu\(|is_causal\s*=", MODEL,
            "the causal mask is off by one: its diagonal lets each query attend to the next (future) token, "
            "so the model peeks ahead and the loss leaks below what the data allows",
            bad=r"tril\([^)]*diagonal\s*=\s*(1\b|[^)]*\+\s*1\b)|triu\([^)]*diagonal\s*=\s*(0\b|-)"
                r"|is_causal\s*=\s*False",
            evidence=("entropy floor", "below", "better"), fix=(r"is_causal\s*=\s*False", "is_causal=True")),
    Suspect("mask_fill_value", r"masked_fill\(", MODEL,
            "the attention mask fills -1e9 / a hard-coded float32 minimum instead of -inf (or finfo of the "
            "scores' dtype): it overflows in fp16 half precision",
            bad=r"-\s*1e\d|finfo\(\s*torch\.float32|-\s*10000", evidence=("overflow", "Half", "float16"),
            fix=(r"-\s*1e\d+|torch\.finfo\(\s*torch\.float32\s*\)\.min", 'float("-inf")')),
    Suspect("key_padding_mask_axes", r"attn_mask\[", MODEL,
            "the padding attention mask is broadcast on the wrong axis: it must be (B, 1, 1, T_k) to mask "
            "keys; as written it masks queries (whole rows become -inf, softmax of all -inf is NaN) or lines "
            "the batch up with the heads (a shape error)",
            bad=r"attn_mask\[\s*:\s*,\s*None\s*,\s*:", evidence=("attn", "softmax", "NaN", "nan")),
    Suspect("norm_eps", r"rsqrt\(|sqrt\(", MODEL,
            "the RMSNorm has no eps inside the rsqrt: a zero vector (the padding embedding) gives rsqrt(0) "
            "= inf and NaN; add epsilon inside the square root",
            bad=eps_outside_sqrt, evidence=("norm", "nan", "NaN", "inf")),
    Suspect("softmax_before_loss", r"softmax", MODEL,
            "softmax is applied before cross_entropy: the loss gets probabilities instead of logits (it "
            "applies log_softmax itself), so gradients vanish and the model barely learns",
            bad=softmax_into_loss, evidence=("barely moved", "grad norm")),
    Suspect("attention_scale", r"@\s*k\.transpose|scale\s*=", MODEL,
            "the attention scores are not scaled by 1/sqrt(head_dim): the dot-product logits are too large "
            "and the softmax saturates",
            bad=r"^(?!.*(scale|sqrt)).*=\s*\(?\s*q\s*@\s*k\.transpose|scale\s*=\s*1(\.0)?\s*/\s*self\.head_dim\s*$",
            evidence=("attention", "max_logit", "entropy")),
    Suspect("heads_transpose", r"\.view\(\s*B\s*,", MODEL,
            "the heads are split or merged with view() without the transpose: the head axis and the "
            "position (time) axis are mixed up (reshape needs transpose(1, 2))",
            bad=r"view\(\s*B\s*,\s*self\.n_head\s*,\s*T|^\s*y\s*=\s*y\.contiguous\(\)\.view\("),
    Suspect("out_projection", r"^\s*return (y|self\.c_proj\()", MODEL,
            "the attention output projection (c_proj) is not applied: attention returns the merged heads "
            "unprojected", bad=r"^\s*return y\s*$"),
    Suspect("rope_applied", r"=\s*apply_rotary\(", MODEL,
            "rotary embeddings (RoPE) are not applied to both queries and keys: the rotation is missing, "
            "so attention carries no position",
            bad=r"^\s*q\s*=\s*apply_rotary\(q", if_absent=r"q_norm\(q\)",
            absent_cause="rotary embeddings (RoPE) are never applied: cos and sin are computed but the queries and "
                         "keys are not rotated, so attention has no position information"),
    Suspect("qk_norm", r"self\.[qk]_norm\(", MODEL,
            "QK norm is not applied to both queries and keys: the key (or query) norm is missing",
            bad=r"^\s*q\s*=\s*self\.q_norm\(q\)\s*$", if_absent=r"apply_rotary\(q",
            absent_cause="QK norm is missing: the queries and keys are never RMS-normalised (q_norm / k_norm unused)"),
    Suspect("residual", r"x\s*=\s*(x\s*\+|self\.norm|norm)|return self\.c_proj\(x\s*\+", MODEL,
            "the residual connection is wrong: the skip path goes through the projection / normalisation "
            "(post-norm on the residual stream) instead of x = x + sublayer(norm(x))",
            bad=r"^\s*x\s*=\s*self\.norm_\d\(x\s*\+|^\s*x\s*=\s*self\.norm_\d\(x\)|^\s*x\s*=\s*self\.attn\(|"
                r"return self\.c_proj\(x\s*\+"),
    Suspect("mlp_dropout", r"Dropout|Identity|return self\.c_proj", MODEL,
            "dropout in the MLP is missing: the dropout module is not applied (or is an identity)",
            bad=r"nn\.Identity\(\)|^\s*return self\.c_proj\(x\)\s*$"),
    Suspect("linear_bias", r"nn\.Linear\(", MODEL,
            "the linear projection layers are built with bias=True although the design has no bias",
            bad=r"bias\s*=\s*True"),
    Suspect("context_check", r"assert .*sequence_len", MODEL,
            "the context-length check ignores the positions already in the KV cache (or is missing): a "
            "sequence longer than sequence_len goes past the rotary tables silently",
            bad=r"assert\s+T\s*<=", if_absent=r"def hidden_states",
            absent_cause="there is no check of the sequence length against the context (sequence_len): a longer "
                         "sequence or a full KV cache goes past the rotary tables silently; assert start + T <= "
                         "length"),
    Suspect("rotary_device", r"torch\.arange\(|inv_freq\s*=", MODEL,
            "the rotary position tensors (arange / inv_freq) are created on the CPU, not on the model's "
            "device (missing device=, or not a registered buffer)",
            bad=r"positions\s*=\s*torch\.arange\((?!.*device)|self\.inv_freq\s*=", evidence=("device",)),
    # --- data ---------------------------------------------------------------------------------
    Suspect("targets_shift", r"return\s+\w+\[:-1\]|targets\s*=", DATA,
            "the targets are not shifted by one: they are the same positions as the inputs instead of the "
            "next token, so the model learns to copy its input",
            bad=r"return\s+(\w+)\[:-1\]\s*,\s*\1\[:-1\]|zip\(ids\[:-1\]|mask\[:-1\]\)",
            evidence=("entropy floor", "below")),
    Suspect("shuffle", r"shuffle\s*=|set_epoch\(", DATA,
            "the training data is not shuffled: the sampler uses shuffle=False (or never calls set_epoch), "
            "so batches come in the stored order every epoch",
            bad=r"shuffle\s*=\s*False", evidence=("epoch",)),
    Suspect("set_epoch", r"\.set_epoch\(", DATA + TRAIN, "the sampler's set_epoch is not called",
            if_absent=r"for .* in .*loader|enumerate\(loader\)", context="DistributedSampler",
            absent_cause="sampler.set_epoch(epoch) is never called: the DistributedSampler shuffles in the same "
                         "order every epoch"),
    Suspect("chat_collate", r"DataLoader\(", DATA,
            "variable-length batches need padding: the DataLoader has no pad collate_fn, so default collate "
            "cannot stack sequences of different length", requires=r"collate_fn", context=r"Chat|chats|pad"),
    Suspect("pad_targets", r"torch\.full\(|targets\s*=\s*\[", DATA,
            "padded positions get the pad id as their target instead of -1 (the ignore index), so padding "
            "is in the loss",
            bad=r"targets\s*=\s*torch\.full\(.*pad_id|else\s+pad_id|else\s+self\.tokenizer\.pad_id"),
    Suspect("padding_collate", r"collate_fn|longest\s*=", DATA,
            "the batch is not padded to the longest sequence: no pad collate_fn (default collate cannot "
            "stack ragged lengths) or the length is taken from the first item",
            bad=r"longest\s*=\s*len\(batch\[0\]", if_absent=r"DataLoader\("),
    Suspect("val_augmented", r"random_crop\s*=|train\s*=\s*True", DATA + EVAL,
            "validation uses the training augmentation (random crops), so the held-out loss is noisy and "
            "not comparable", bad=lambda line, before="": bool(re.search(r"random_crop\s*=\s*True", line))
            or val_loader_augmented(line, before)),
    Suspect("worker_cache", r"self\.\w*cache\w*\[|functools\.cache|lru_cache", DATA,
            "the dataset memoises items in a dict cache on the dataset: memory grows in every worker",
            bad=r"self\.\w*cache\w*\[\s*(index|idx|i|item)\s*\]\s*="),  # items by index, not a bounded table
    Suspect("train_val_split", r"\btrain\s*=|val_index|setdefault", ("picochat/dataset.py",),
            "train and validation overlap: the split puts validation examples into training (duplicates "
            "not removed or the train split is all examples), so validation is contaminated",
            bad=r"^\s*train\s*=\s*(list\()?(unique|samples)\b"
                r"|^\s*train\s*=\s*\[\s*s\s+for\s+s\s+in\s+(unique|samples)\s*\]",
            evidence=("better", "lower")),
    # --- inference and evaluation --------------------------------------------------------------
    Suspect("temperature_zero", r"/\s*temperature\b", ENGINE,
            "temperature zero is not handled before dividing: logits / temperature with temperature 0 "
            "gives inf/NaN; greedy decoding (argmax) must come first",
            requires=r"temperature\s*==\s*0", must_follow=r"temperature\s*==\s*0",
            evidence=("probability tensor", "inf", "nan", "samples")),
    Suspect("top_k_clamp", r"topk\(|top_k", ENGINE,
            "top-k is not clamped to the vocabulary size: torch.topk gets a k larger than the vocab",
            bad=r"\bk\s*=\s*top_k\s*$|topk\([^)]*top_k"),
    Suspect("kv_cache_position", r"self\.pos\s*[+]?=|\.advance\(", ENGINE + MODEL,
            "the KV cache position is not advanced correctly (assigned instead of incremented, or advance "
            "never called), so cached decoding writes over the same offset",
            bad=r"self\.pos\s*=\s*num_tokens", evidence=("samples",)),
    Suspect("kv_cache_advance", r"\.advance\(", MODEL, "the KV cache position is never advanced",
            if_absent=r"kv_cache\.pos", context="kv_cache",
            absent_cause="the KV cache position (pos) is never advanced after a forward pass: kv_cache.advance is "
                         "not called, so every decoding step writes at the same offset and rotary positions repeat",
            evidence=("samples",)),
    Suspect("optimizer_restored", r"optimizer\.load_state_dict\(", ("picochat/checkpoint.py",) + TRAIN,
            "the optimizer state is not restored on resume", if_absent=r"model\.load_state_dict\(",
            context=r"optimizer", absent_cause="resuming from the checkpoint does not restore the optimizer state "
            "(optimizer.load_state_dict is missing): AdamW's moments (exp_avg) start from zero after the resume"),
    Suspect("argmax_dim", r"argmax\(", EVAL,
            "argmax is taken over the wrong dim (axis): it must reduce over the vocab / class axis (dim=-1), "
            "not the sequence or batch axis, and without keepdim broadcasting against the labels",
            bad=r"argmax\(\s*\)|argmax\(\s*dim\s*=\s*0\s*\)|keepdim\s*=\s*True", evidence=("accuracy",)),
    Suspect("class_weights", r"cross_entropy\(|class_weights\s*=", EVAL,
            "the class imbalance is not handled: the classification loss has no inverse-frequency class "
            "weights (or weights proportional to frequency), so the rare class is ignored",
            bad=r"cross_entropy\((?!.*weight)[^)]*label|class_weights\s*=\s*counts\s*/", evidence=("recall",)),
    Suspect("batchnorm", r"BatchNorm|head\.eval\(\)", EVAL,
            "the BatchNorm running statistics are never updated (momentum 0 or the head in eval mode "
            "while training), so eval uses stale running stats",
            bad=r"momentum\s*=\s*0(\.0)?\b"),
    Suspect("eval_before_training", r"\w+\.eval\(\)", EVAL + TRAIN,
            "the module is put in eval mode before its training loop: BatchNorm running statistics and dropout "
            "behave as in eval while training (the running stats are never updated)",
            must_follow=r"\.backward\(", evidence=("probe",)),
    Suspect("probe_loss", r"mse_loss|nll_loss|cross_entropy\(", EVAL,
            "the classification loss is wrong: MSE regression on labels or nll_loss on raw logits without "
            "log_softmax instead of cross-entropy on the logits",
            bad=r"mse_loss|nll_loss\((?!.*log_softmax)", evidence=("probe",)),
    Suspect("stats_before_split", r"\.mean\(dim=0\)|\.std\(dim=0\)", EVAL,
            "the standardisation statistics (mean, std) are computed on all data before the train/test "
            "split, leaking held-out data into the features",
            bad=r"=\s*features\.(mean|std)\("),
)}

# ------------------------------------------------------------------------------------------
# rules: symptoms -> views -> suspects


@dataclass(frozen=True)
class Rule:
    symptom: str
    suspects: tuple[str, ...]
    views: tuple[str, ...] = ()
    words: str | None = None  # a regex the summary must match for this rule to apply
    note: str = ""


RULES = (
    Rule("nonfinite", ("norm_eps", "key_padding_mask_axes", "mask_fill_value", "temperature_zero",
                       "softmax_before_loss", "attention_scale"), ("nonfinite",),
         note="NaN/Inf: masks that leave a row all -inf, norms without eps, divisions by zero, log of zero"),
    Rule("crashed", ("mask_fill_value", "scaler_update", "scaler_in_loop", "key_padding_mask_axes",
                     "padding_collate", "chat_collate", "temperature_zero", "argmax_dim", "top_k_clamp"), ("stderr",),
         note="a crash: start where the traceback says, then the constructs that raise there"),
    Rule("not_learning", ("zero_grad_placement", "softmax_before_loss", "params_not_optimised",
                          "lr_schedule_shape", "scheduler_order"), ("grad_norms",),
         note="not learning: gradients cleared before the step, probabilities into the loss, frozen "
              "parameters, an lr of zero"),
    Rule("below_entropy_floor", ("causal_mask", "targets_shift", "train_val_split", "early_stop_on_train"),
         ("eval",), note="better than the data allows: the model sees what it predicts, or validation is in training"),
    Rule("memory_growth", ("loss_graph_kept", "eval_no_grad", "worker_cache"), ("memory",),
         note="memory climbing: a tensor kept with its graph, eval with autograd on, caches"),
    Rule("peak_memory_higher", ("eval_no_grad", "loss_graph_kept"), ("memory",)),
    Rule("train_val_gap", ("early_stop_on_train", "eval_mode_restored", "mlp_dropout", "train_val_split"),
         ("eval",), note="validation rising while train falls: regularisation off, selection on train loss"),
    Rule("lr_schedule_off", ("scheduler_order", "lr_schedule_shape", "lr_times_world_size"), ("log",)),
    Rule("weight_decay_off", ("weight_decay_scheduled",), ("log",)),
    Rule("new_warnings", ("scheduler_order",), ("stderr",), words=r"lr_scheduler|scheduler"),
    Rule("degenerate_samples", ("causal_mask", "targets_shift", "temperature_zero", "top_k_clamp",
                                "kv_cache_position", "kv_cache_advance", "argmax_dim"), ("samples",)),
    Rule("train_loss_off", ("grad_accum_scaling", "loss_graph_kept"), ("log",),
         note="logged train loss off by a factor: how the loss is summed / averaged / scaled"),
    Rule("grad_norm_off", ("zero_grad_placement", "grad_norm_formula", "grad_accum_scaling", "clip_after_step",
                           "softmax_before_loss", "params_not_optimised"), ("grad_norms",),
         note="grad norm off the baseline: how gradients are cleared, summed, scaled, clipped, measured"),
    Rule("metrics_differ", ("epoch_metric_reset",), ("eval",), words=r"epoch"),
    Rule("metrics_differ", ("argmax_dim", "class_weights", "batchnorm", "eval_before_training", "probe_loss",
                            "temperature_zero", "train_val_split", "pad_targets", "targets_shift",
                            "stats_before_split"), ("eval",)),
    Rule("better_than_baseline", ("causal_mask", "targets_shift", "eval_mode_restored", "train_val_split",
                                  "pad_targets", "zero_grad_placement", "lr_schedule_shape", "mlp_dropout"), ("log",),
         note="better than the pristine run is suspicious too: leaks, dropout off, a larger effective lr"),
    Rule("slower_than_baseline", ("attention_scale", "heads_transpose", "out_projection", "rope_applied",
                                  "shuffle", "set_epoch", "params_not_optimised", "lr_schedule_shape",
                                  "grad_accum_scaling",
                                  "clip_after_step", "residual"), ("log",),
         note="learns slower: attention wiring and scaling, positions, data order, frozen params, lr"),
    Rule("diverged", ("lr_times_world_size", "lr_schedule_shape", "attention_scale", "grad_accum_scaling",
                      "clip_after_step"), ("grad_norms",)),
    Rule("throughput_drop", ("checkpoint_every_step", "eval_no_grad"), ("throughput",)),
    Rule("stopped_early", ("early_stop_on_train",), ("log",)),
    Rule("did_not_stop_early", ("early_stop_on_train",), ("log",)),
)

NOTHING = {"no_visible_effect"}

# ------------------------------------------------------------------------------------------
# crashes: the exception's words -> what it usually means


@dataclass(frozen=True)
class CrashCause:
    words: str  # regex on the exception line
    cause: str
    suspects: tuple[str, ...] = ()


CRASH_CAUSES = (
    CrashCause(r"probability tensor contains|inf.*nan|nan.*inf",
               "temperature zero: logits divided by a temperature of 0 give inf/NaN probabilities; greedy "
               "(argmax) decoding must handle temperature == 0 before the division", ("temperature_zero",)),
    CrashCause(r"without overflow|Half|float16|overflow",
               "the mask fill value (-1e9 or a float32 minimum) overflows float16 (half precision); fill with "
               "-inf or finfo of the scores' dtype", ("mask_fill_value",)),
    CrashCause(r"unscale_\(\) has already been called|scaler",
               "the GradScaler is not updated every step: scaler.update() is missing after scaler.step",
               ("scaler_update",)),
    CrashCause(r"stack expects each tensor|equal size|ragged|collate|sequence at dim",
               "the batch is not padded: sequences of different length cannot be stacked; pad to the longest "
               "in a collate_fn", ("padding_collate",)),
    CrashCause(r"selected index k out of range|topk|k \(\d+\) is too big",
               "top-k is larger than the vocabulary: clamp k to the vocab size", ("top_k_clamp",)),
    CrashCause(r"must match the size|size of tensor a|shape|broadcast|dimension",
               "a shape mismatch: a tensor is reduced or broadcast along the wrong dimension (axis)",
               ("key_padding_mask_axes", "argmax_dim")),
    CrashCause(r"same device|device",
               "a tensor is created on the wrong device (CPU vs the model's device)", ("rotary_device",)),
    CrashCause(r"KeyError|IndexError|out of range|index",
               "an id is outside a table: the special token ids overlap or are missing from the decode "
               "table (vocab)", ()),
    CrashCause(r"No such file|EOFError|corrupt|unpickl|barrier",
               "ranks race on a shared file: a barrier (sync) is missing after the master rank builds it", ()),
)


def rules_for(symptoms, summary):
    """The rules that apply to a run: in the rule book's order (most telling first)."""
    return [r for r in RULES if r.symptom in symptoms and (r.words is None or re.search(r.words, summary))]


def crash_cause(exception_text):
    return next((c for c in CRASH_CAUSES if re.search(c.words, exception_text, re.IGNORECASE)), None)


