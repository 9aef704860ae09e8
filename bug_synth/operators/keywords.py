"""Keywords dropped: a call loses one keyword argument whose value decides the maths or the data
(keepdim=True, is_causal=True, reduction="sum", std=0.02, alpha=-lr, generator=g, sampler=...), so
the callee's default silently takes its place; or loses one that a function of the same file gives
a default to (hidden_states(idx, attn_mask=attn_mask) -> hidden_states(idx)).

Only keywords whose callee has a default for them, so the call still runs; never a value that is
that default already (dropping it changes nothing)."""

from dataclasses import dataclass

import libcst as cst

from bug_synth.operators.devices import without_keyword
from bug_synth.operators.family import Family, family
from bug_synth.operators.shapes import (
    LOSS_FUNCTIONS, callee_name, float_value, is_method_call, name_terms, positional,
)
from bug_synth.operators.source import Site

DROP_TERMS = ("missing", "drop", "without", "removed", "no longer", "forgot", "omit", "default",
              "not passed", "isn't passed", "not set", "left out")


@dataclass(frozen=True)
class Option:
    """A keyword of some callees ({name: the default's source}), and what goes wrong without it:
    `effect` may name the {value} dropped and the {default} that applies instead."""
    keyword: str
    callees: dict
    effect: str
    terms: tuple


def _each(names, default):
    return dict.fromkeys(names, default)


REDUCTIONS = ("mean", "sum", "max", "min", "amax", "amin", "argmax", "argmin", "std", "var", "norm", "logsumexp",
              "prod", "median", "all", "any", "nansum", "nanmean", "vector_norm", "matrix_norm", "std_mean",
              "var_mean")
LOSSES = (*LOSS_FUNCTIONS, "CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss",
          "KLDivLoss", "BCELoss", "BCEWithLogitsLoss")
SDPA = ("scaled_dot_product_attention",)
FLASH = ("flash_attn_func", "flash_attn_with_kvcache", "flash_attn_varlen_func", "flash_attn_qkvpacked_func")
FUNCTIONAL_DROPOUTS = ("dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout")
DROPOUTS = (*FUNCTIONAL_DROPOUTS, "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout")
ADAMS = ("Adam", "AdamW", "Adamax", "NAdam", "RAdam")
BATCH_NORMS = ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "batch_norm")
RNG_USERS = ("multinomial", "randperm", "randint", "rand", "randn", "bernoulli", "poisson", "normal_", "uniform_",
             "trunc_normal_", "exponential_", "random_", "bernoulli_", "DataLoader", "random_split", "RandomSampler",
             "SubsetRandomSampler", "WeightedRandomSampler")
COLLECTIVES = ("all_reduce", "reduce", "reduce_scatter", "reduce_scatter_tensor", "all_reduce_coalesced")
CLAMPS = ("clamp", "clamp_", "clip", "clip_")

# Left out on purpose: dim (reduction-axis drops it), device/dtype/non_blocking (device-dropped and
# dtype-dropped), ignore_index/weight/label_smoothing/pos_weight (loss-option-dropped), bias (a
# layer that gains a bias trains as well as one without), eps (the defaults are as small as the values
# passed), unbiased/correction (a factor n/(n-1), invisible in any real batch), enable_gqa (without it
# fewer key heads crash at once, equal ones change nothing).
OPTIONS = (
    Option("keepdim", _each(REDUCTIONS, "False"),
           "the reduced dimension is squeezed away, so the result no longer lines up with the axes it is "
           "combined with", ("keepdim", "keep dim", "keep_dim", "squeez", "broadcast")),
    Option("reduction", _each(LOSSES, '"mean"'),
           "the loss is one mean over every element instead of reduced with {value}",
           ("reduction", "mean", "averag", "sum", "per-token", "per token")),
    Option("is_causal", _each(SDPA, "False"),
           "attention is no longer causal: every position sees the tokens after it", ("causal", "future", "leak")),
    Option("causal", _each(FLASH, "False"),
           "attention is no longer causal: every position sees the tokens after it", ("causal", "future", "leak")),
    Option("attn_mask", _each(SDPA, "None"),
           "attention is not masked: every query sees every key, future and padding ones included",
           ("mask", "causal", "future", "padding")),
    Option("window_size", _each(FLASH, "(-1, -1)"),
           "attention spans the whole context instead of the window {value}", ("window", "sliding", "local")),
    Option("dropout_p", _each(SDPA + FLASH, "0.0"),
           "attention dropout is never applied", ("dropout",)),
    Option("scale", _each(SDPA, "None"),
           "the scores are scaled by the default 1/sqrt(head_dim) instead of {value}", ("scale", "sqrt", "temperat")),
    Option("softmax_scale", _each(FLASH, "None"),
           "the scores are scaled by the default 1/sqrt(head_dim) instead of {value}", ("scale", "sqrt", "temperat")),
    Option("p", _each(DROPOUTS, "0.5"),
           "the dropout rate falls back to 0.5 instead of {value}", ("dropout", "0.5", "rate")),
    Option("training", _each(FUNCTIONAL_DROPOUTS, "True"),
           "dropout is applied in evaluation too, not only in training", ("training", "eval", "dropout")),
    Option("training", _each(("batch_norm",), "False"),
           "batch norm uses its running statistics in training too and never updates them",
           ("training", "running", "statistic", "batch norm", "batchnorm")),
    Option("diagonal", _each(("tril", "triu", "tril_", "triu_"), "0"),
           "the triangle is cut at the main diagonal instead of {value}, so the mask is wrong wherever that "
           "offset is not 0", ("diagonal", "offset", "mask", "tril", "triu", "triang")),
    Option("padding_idx", _each(("Embedding", "embedding"), "None"),
           "the padding token's embedding is neither held at zero nor kept out of the updates",
           ("padding_idx", "padding", "pad")),
    Option("lr", {**_each(("Adam", "AdamW", "SGD", "RAdam"), "1e-3"), **_each(("RMSprop", "Adagrad"), "1e-2"),
                  **_each(("Adamax", "NAdam"), "2e-3")},
           "the optimizer uses its default learning rate {default} instead of {value}", ("learning rate", "lr")),
    Option("betas", _each(ADAMS, "(0.9, 0.999)"),
           "the optimizer's moments decay with the default betas (0.9, 0.999) instead of {value}",
           ("beta", "momentum", "moment")),
    Option("weight_decay", {**_each(("Adam", "SGD", "RMSprop", "Adagrad", "Adamax", "NAdam", "RAdam"), "0"),
                            "AdamW": "1e-2"},
           "the weight decay falls back to {default} instead of {value}", ("weight decay", "weight_decay", "decay")),
    Option("momentum", _each(("SGD", "RMSprop"), "0"),
           "the optimizer runs without momentum instead of momentum {value}", ("momentum",)),
    Option("momentum", _each(BATCH_NORMS, "0.1"),
           "the running statistics update with momentum 0.1 instead of {value}", ("momentum", "running")),
    Option("eta_min", _each(("CosineAnnealingLR", "CosineAnnealingWarmRestarts"), "0"),
           "the learning rate is annealed to 0 instead of {value}", ("eta_min", "learning rate", "lr", "floor")),
    Option("largest", _each(("topk",), "True"),
           "topk picks the largest values (its default) instead of following largest={value}",
           ("largest", "smallest", "topk")),
    Option("descending", _each(("sort", "argsort"), "False"),
           "the sort runs ascending (its default) instead of following descending={value}",
           ("descending", "ascending", "sort", "order")),
    Option("replacement", {"multinomial": "False", "RandomSampler": "False", "WeightedRandomSampler": "True"},
           "it draws with replacement={default} (its default) instead of {value}", ("replacement",)),
    Option("generator", _each(RNG_USERS, "None"),
           "it draws from the global random generator instead of {value}, so it is not reproducible from its own "
           "seed and moves the stream everything else draws from", ("generator", "rng", "random", "seed",
                                                                     "reproduc", "determinis")),
    Option("shuffle", _each(("DataLoader",), "False"),
           "the data is not shuffled: every epoch visits it in stored order", ("shuffl", "order")),
    Option("shuffle", _each(("DistributedSampler",), "True"),
           "the sampler shuffles (its default) even where shuffle={value} says it should not",
           ("shuffl", "order")),
    Option("drop_last", _each(("DataLoader",), "False"),
           "the last, incomplete batch is kept", ("drop_last", "drop last", "last batch", "partial", "incomplete")),
    Option("drop_last", _each(("DistributedSampler",), "False"),
           "the sampler repeats samples to give every rank as many as the others",
           ("drop_last", "drop last", "repeat", "duplicat", "pad")),
    Option("sampler", _each(("DataLoader",), "None"),
           "the loader reads the dataset in order without its sampler: no shuffling and no split across ranks",
           ("sampler", "shuffl", "shard", "rank", "order")),
    Option("batch_size", _each(("DataLoader",), "1"),
           "the loader falls back to batches of one instead of {value}", ("batch size", "batch_size", "batch")),
    Option("std", _each(("normal_", "trunc_normal_"), "1.0"),
           "the weights are drawn with std 1.0 (the default) instead of {value}",
           ("std", "standard deviation", "init", "scale", "variance")),
    Option("mean", _each(("normal_", "trunc_normal_"), "0.0"),
           "the weights are drawn around 0.0 (the default) instead of {value}", ("mean", "init", "center", "centre")),
    Option("gain", _each(("xavier_uniform_", "xavier_normal_", "orthogonal_"), "1.0"),
           "the weights are drawn with gain 1.0 (the default) instead of {value}", ("gain", "init", "scale")),
    Option("a", {"trunc_normal_": "-2.0", "uniform_": "0.0"},
           "the lower bound of the weights falls back to {default} instead of {value}",
           ("lower", "bound", "init", "range", "uniform", "truncat")),
    Option("b", {"trunc_normal_": "2.0", "uniform_": "1.0"},
           "the upper bound of the weights falls back to {default} instead of {value}",
           ("upper", "bound", "init", "range", "uniform", "truncat")),
    Option("alpha", _each(("add", "add_", "sub", "sub_", "_foreach_add_", "_foreach_sub_"), "1"),
           "the term is added with scale 1 (the default) instead of {value}",
           ("alpha", "scale", "step size", "learning rate", "lr", "sign")),
    Option("value", _each(("addcmul", "addcmul_", "addcdiv", "addcdiv_", "_foreach_addcmul_", "_foreach_addcdiv_"),
                          "1"),
           "the product is added with scale 1 (the default) instead of {value}",
           ("value", "scale", "step size", "learning rate", "lr", "coefficient")),
    Option("min", _each(CLAMPS, "None"),
           "nothing bounds it from below any more (the lower bound was {value})",
           ("min", "lower", "bound", "clamp", "clip")),
    Option("max", _each(CLAMPS, "None"),
           "nothing bounds it from above any more (the upper bound was {value})",
           ("max", "upper", "bound", "clamp", "clip")),
    Option("num_classes", _each(("one_hot",), "-1"),
           "the number of classes is guessed from the largest label in the batch instead of {value}",
           ("num_classes", "classes", "one_hot", "one-hot", "width")),
    Option("minlength", _each(("bincount",), "0"),
           "the counts are only as long as the largest value present, not {value}, whenever a value is missing",
           ("minlength", "length", "count", "missing class", "absent")),
    Option("dim", _each(("normalize", "cosine_similarity"), "1"),
           "it works over dim 1 (the default) instead of {value}", ("dim", "axis", "dimension")),
    Option("op", _each(COLLECTIVES, "SUM"),
           "the values are summed across ranks (the default) instead of reduced with {value}",
           ("sum", "avg", "average", "mean", "reduce", "op", "world")),
)
OPTION_OF = {(option.keyword, callee): option for option in OPTIONS for callee in option.callees}
# keywords of functions in the file that place a tensor (device-dropped and dtype-dropped own those), or
# whose words say how a call runs or reports, not what it computes (verbose=, log_every=, checkpoint_dir=)
PLACEMENT = frozenset({"device", "dtype", "non_blocking"})
NOT_MATHS = frozenset({"verbose", "quiet", "log", "print", "desc", "name", "path", "dir", "file", "tag", "message",
                       "msg", "title", "color", "colour"})


def _defaults(source):
    """{(class or "", function): {parameter: its default's source}} for the functions and methods of
    the file; a class's __init__ under ("", class) too, for calls that build it."""
    found = {}
    for statement in source.module.body:
        if isinstance(statement, cst.FunctionDef):
            found[("", statement.name.value)] = _parameter_defaults(source, statement)
        elif isinstance(statement, cst.ClassDef):
            for method in statement.body.body:
                if isinstance(method, cst.FunctionDef):
                    defaults = _parameter_defaults(source, method)
                    found[(statement.name.value, method.name.value)] = defaults
                    if method.name.value == "__init__":
                        found[("", statement.name.value)] = defaults
    return found


def _parameter_defaults(source, function):
    params = (*function.params.params, *function.params.kwonly_params)
    return {p.name.value: source.code(p.default) for p in params if p.default is not None}


def _own_callee(source, call):
    """{parameter: default} of the function of this file a call calls: f(...) of a module-level
    function or class, self.f(...) of a method of the class around the call; else None."""
    defaults = source.memo("parameter-defaults", _defaults)
    func = call.func
    if isinstance(func, cst.Name):
        return defaults.get(("", func.value))
    if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self":
        owner = next((n for n in source.ancestors(call) if isinstance(n, cst.ClassDef)), None)
        if owner is not None:
            return defaults.get((owner.name.value, func.attr.value))
    return None


def _is_default(code, default):
    """Whether a keyword's value is its default already: the same source or number, or the default
    member of an enum (dist.ReduceOp.SUM for SUM)."""
    if code == default or default.isidentifier() and code.endswith(f".{default}"):
        return True
    value, fallback = float_value(_expression(code)), float_value(_expression(default))
    return value is not None and value == fallback


def _expression(code):
    try:
        return cst.parse_expression(code)
    except cst.ParserSyntaxError:
        return None


def _bounds_left(call, dropped):
    """How many bounds a clamp keeps without one keyword: the other keyword, and the positional ones
    after the tensor (x.clamp(0, 1), torch.clamp(x, 0, 1)); with none left it raises."""
    named = [a for a in call.args if a is not dropped and a.keyword is not None and a.keyword.value in ("min", "max")]
    return len(named) + len(positional(call)) - (0 if is_method_call(call) else 1)


def _shown(source, call):
    code = source.code(call.func)
    return code if len(code) <= 40 else callee_name(call)


@family
class KeywordDropped(Family):
    name = "keyword-dropped"
    theme = "keywords"
    description = "a keyword that sets the maths is left out (keepdim=True, is_causal=True, std=0.02, ...)"

    def sites(self, source):
        for call in source.nodes(cst.Call):
            own = _own_callee(source, call)
            for arg in call.args:
                if arg.keyword is None:
                    continue
                site = self._site(source, call, arg, own)
                if site is not None:
                    yield site

    @staticmethod
    def _site(source, call, arg, own):
        keyword, value, callee = arg.keyword.value, source.code(arg.value), _shown(source, call)
        if own is not None:
            default = own.get(keyword)
            words = set(keyword.lower().split("_"))
            if default is None or _is_default(value, default) or keyword in PLACEMENT or words & NOT_MATHS:
                return None
            return Site(
                call, without_keyword(call, arg),
                f"{keyword}={value} is dropped from {callee}(...) {source.where(call)}, so {callee} falls back to "
                f"its default {keyword}={default}",
                (tuple(dict.fromkeys(name_terms(keyword) + (keyword.replace("_", " "),))), DROP_TERMS))
        option = OPTION_OF.get((keyword, callee_name(call)))
        if option is None:
            return None
        default = option.callees[callee_name(call)]
        if _is_default(value, default) or (keyword in ("min", "max") and _bounds_left(call, arg) <= 0):
            return None
        return Site(
            call, without_keyword(call, arg),
            f"{keyword}={value} is dropped from {callee}(...) {source.where(call)}: "
            f"{option.effect.format(value=value, default=default)}",
            (option.terms, DROP_TERMS))
