"""bugdrill's telemetry probe: global hooks loaded into a PyTorch training process from outside.

`sitecustomize.py` (next to this file) calls `install()` when BUGDRILL_PROBE_DIR is set. The
probe needs nothing from the training script: it hooks every optimizer step and every module
forward through torch's global hooks, and wraps a few functions of torch (F.cross_entropy,
Tensor.softmax, torch.softmax, F.scaled_dot_product_attention, GradScaler.step). It does not
import torch itself: the hooks go in right after the script's own `import torch`, so settings
the script makes before that import (OMP_NUM_THREADS, ...) still take effect, and a process that
never imports torch pays nothing. Only the standard library and torch are used. The probe draws
no random numbers, changes no grad mode and writes to no tensor of the training: same seed, same
loss curve. An exception inside the probe is recorded and switches that part of it off; it
never reaches the training script.

Settings (environment):
    BUGDRILL_PROBE_DIR    where the records go (without it nothing is installed)
    BUGDRILL_PROBE_EVERY  steps between detailed samples (default 10)
    BUGDRILL_PROBE_FIRST  steps 1..N are all sampled as well (default 5)

Output: `$BUGDRILL_PROBE_DIR/rank{R}.jsonl`, R from $RANK, else torch.distributed's rank once
initialised, else 0. One JSON object per line, flushed line by line, so a crash or a kill leaves
only complete lines. The file is opened for appending at the process's first training forward
(or first record): a torchrun launcher, which trains nothing, writes nothing, and a second process
with the same rank in the same directory adds its records after a meta line of its own.
Non-finite floats are written as the bare JSON tokens NaN, Infinity and -Infinity (Python's json
default; `json.loads` reads them back). null means "not measured".

Terms:
    step       1-based count of the optimizer steps of the first optimizer seen (counted at the
               end of optimizer.step()); other optimizers are not looked at. A step a
               GradScaler skips for non-finite gradients counts too, marked "skipped": true, so
               the numbers match a loop's iteration count (picochat's `step 00010/...` is step 10).
    training forward  a forward of a root that has parameters, in training mode, with grad
               enabled, not re-run inside backward: evaluation under no_grad, generation and
               activation-checkpoint recomputation do not count.
    root       a module whose forward runs while no other module's forward is running (the
               model, or DDP around it). Modules and parameters are named by the first root
               that holds them (root.named_modules()/named_parameters(), DDP's leading
               `module.` removed); the model itself is "". A module no root holds is named by
               its class; a parameter no root holds is "group{g}.param{i}".
    sampled step  step s with s <= FIRST or s % EVERY == 0. Per-module statistics come from the
               first training forward of a sampled step (its first micro-batch) and from the
               first sequence of that batch.

Records:
    {"type": "meta", "rank": 0, "world_size": 1, "pid": 123, "torch": "2.13.0", "device": "cpu",
     "threads": 1, "argv": [...], "every": 10, "first": 5, "time": <unix time at probe start>}
        the first line each process writes; device is that of the model's parameters.
    {"type": "step", "step": 1, "t": <s from probe start to the end of the step>,
     "dt_ms": <from the step's first training forward to the end of optimizer.step()>,
     "loss": <mean of the training cross_entropy results since the previous step> | null,
     "lr": [per param group], "weight_decay": [per param group],
     "grad_norm": <global L2 norm of the gradients at optimizer.step(), after any clipping and
                   unscaling: as the optimizer sees them>,
     "grad_norm_backward": <global L2 norm of the gradients at the end of the last backward
                   before the step: before clipping, still multiplied by a GradScaler's scale;
                   under DDP this rank's own gradients, before they are averaged> | null,
     "tokens": <tokens in the training forwards since the previous step>, "tokens_per_s": ...,
     "rss_mb": ..., "peak_rss_mb": ..., "cuda_mem_mb": null | ..., "cuda_peak_mb": null | ...,
     "nonfinite_grads": <parameters whose gradient norm at optimizer.step() is NaN or Inf>,
     "skipped": true}   <- only on steps a GradScaler skipped
        tokens: numel of the root's first positional tensor argument when it holds integers
        (token ids); for a float input numel / size(-1), one per feature vector. loss: a
        cross_entropy with reduction "sum" or "none" counts as its mean over targets that are
        not ignore_index. lr: the rate this step used (a script that logs after
        scheduler.step() prints the next step's). cuda_*: torch.cuda.memory_allocated and
        max_memory_allocated, null until the process has initialised CUDA.
    {"type": "detail", "step": 1, "grad_norm": {param: v}, "update_ratio": {param: v},
     "param_norm": {param: v}, "act_rms": {module: v},
     "attention": {module: {"entropy": v, "max_logit": v | null, "heads": n}}}
        after the step record of a sampled step. grad_norm: per parameter, at optimizer.step().
        update_ratio: |w_after - w_before| / |w_before| (empty on skipped steps). param_norm:
        after the step. act_rms: RMS of the output (its first tensor) of each child of the
        model's ModuleLists, Sequentials and ModuleDicts, and of the model's other direct
        children (picochat: wte, blocks.0, blocks.1, norm_f, lm_head); for a Sequential model,
        of each of its children. attention, keyed by the innermost module running (e.g.
        blocks.0.attn), the first call per module: a softmax of a 4-D tensor (batch, heads,
        queries, keys) inside a training forward, or scaled_dot_product_attention, whose
        attention matrix the probe computes again honouring is_causal, attn_mask, scale and
        grouped key heads. entropy: mean over rows (along the softmax dimension) of -sum p ln p,
        in nats, NaN rows left out; max_logit: the largest finite pre-softmax score (null when
        there is none); both over the first sequence of the batch only.
    {"type": "nonfinite", "step": k, "phase": "forward" | "backward" | "loss", "module": name,
     "tensor": "output" | "grad" | "loss", "param": name (backward only), "message": "..."}
        the first occurrence in each phase; k is the step under way.
        forward: the first module whose output went non-finite although its inputs were
        finite. Where a module was handed a non-finite input, the blame passes up to the module
        that called it (the NaN was made in that caller's own code, and the message names the
        module that first received it); where the model itself was given one, the message says
        so. Every training forward is checked: each module's output is summed as it returns
        (one reduction, no copy kept) and its float inputs are held by weak reference; only when
        the root's output sum is not finite are the sums and the inputs looked at. An input
        that nothing else kept alive (autograd keeps most) or that was changed in place cannot
        be judged and counts as finite; a finite output whose sum overflows (beyond 3e38) counts
        as non-finite.
        backward: the first parameter, in the order backward reached them, whose gradient was
        NaN or Inf at the end of a backward pass, before the script could clip or unscale it
        (module: the module that owns it).
        loss: a training cross_entropy result that was NaN or Inf (module: the innermost module
        running, "" when called outside any module).
    {"type": "probe_error", "feature": "...", "error": "...", "traceback": "..."}
        the probe failed; that feature is off for the rest of the run. One record per feature.
    {"type": "end", "steps": n, "reason": "exit"}
        at interpreter exit, by processes that wrote anything (absent when killed).

Cost (benchmarks/bench_probe.py, one thread, picochat): about 1 % of a step of the `small`
preset at the defaults; on `tiny`, whose 30 ms steps run only 32 small modules, the fixed costs
per module and per step (torch's hook dispatch, the NaN search's sums, two fused gradient norms)
weigh more: see the benchmark for measured figures. A detailed sample adds about 1 ms to a tiny
step. On CUDA the probe waits for the device a few times per micro-batch (loss value, output
check) and once per step (gradient norms).
"""

import atexit
import collections
import functools
import importlib.abc
import importlib.util
import inspect
import json
import math
import operator
import os
import sys
import time
import traceback
import weakref

DEFAULT_EVERY = 10
DEFAULT_FIRST = 5

torch = None  # bound when the probe is built, after the script has imported torch


def install():
    """Install the probe now if torch is already imported, else right after its import."""
    if "torch" in sys.modules:
        _install_now()
    else:
        sys.meta_path.insert(0, _AfterTorchImport())


def _install_now():
    # runs inside the script's `import torch`: a failure here must not fail that import
    try:
        _Probe().install()
    except Exception as exc:
        meta = {"type": "meta", "rank": int(os.environ.get("RANK", 0)), "pid": os.getpid()}
        try:
            _Writer(os.environ["BUGDRILL_PROBE_DIR"], lambda: meta).write(_error_record("install", exc))
        except Exception:
            pass  # an unwritable directory: run without telemetry


class _AfterTorchImport(importlib.abc.MetaPathFinder):
    """One-shot import hook: lets the real finders load torch, then installs the probe."""

    def find_spec(self, name, path=None, target=None):
        if name != "torch":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_install(module):
            exec_module(module)
            _install_now()

        spec.loader.exec_module = exec_then_install
        return spec


def _env_int(name, default, minimum):
    try:
        return max(minimum, int(os.environ.get(name, default)))
    except ValueError:
        return default


def _error_record(feature, exc):
    return {
        "type": "probe_error", "feature": feature, "error": f"{type(exc).__name__}: {exc}",
        "traceback": "".join(traceback.format_exception(exc)[-6:]),
    }


class _Writer:
    """Appends records to rank{R}.jsonl. The file is opened, meta line first, on first use:
    rank and argv are only known once the script runs."""

    def __init__(self, directory, meta):
        self.directory = directory
        self.meta = meta
        self.pid = os.getpid()
        self.file = None

    def write(self, record):
        # a forked child (a DataLoader worker) inherits the hooks but must not write
        if os.getpid() != self.pid:
            return
        self.ensure_open()
        self._write_line(record)

    def ensure_open(self):
        if self.file is None and os.getpid() == self.pid:
            meta = self.meta()
            os.makedirs(self.directory, exist_ok=True)
            path = os.path.join(self.directory, f"rank{meta['rank']}.jsonl")
            self.file = open(path, "a", buffering=1, encoding="utf-8")
            self._write_line(meta)

    def _write_line(self, record):
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()


# what the NaN search keeps of a module call: weak references to its float inputs (with their
# versions) and the sum of its output. Keeping activations alive until the forward ends would
# cost more than the search itself: the allocator could not reuse their memory.
_Call = collections.namedtuple("_Call", "module caller inputs output_sum")


class _Probe:
    def __init__(self):
        global torch
        import torch  # already imported by the script: this only binds the module-level name
        self.every = _env_int("BUGDRILL_PROBE_EVERY", DEFAULT_EVERY, 1)
        self.first = _env_int("BUGDRILL_PROBE_FIRST", DEFAULT_FIRST, 0)
        self.start = time.perf_counter()
        self.start_unix = time.time()
        self.writer = _Writer(os.environ["BUGDRILL_PROBE_DIR"], self._meta)
        self.disabled = set()  # features switched off after an error inside the probe
        self.handles = {}  # feature -> removable hook handles
        # module forwards
        self.stack = []  # modules whose forward is running, outermost first
        self.names = {}  # module -> name, from the first root that holds it
        self.param_names = {}  # parameter -> name
        self.roots = {}  # root with parameters -> modules whose output RMS is recorded
        self.device = None
        self.training = False  # inside a training forward
        self.last_root_training = False  # a loss computed after the model returned still counts
        self.collect = False  # gathering per-module statistics in this forward
        self.rms_modules = set()
        self.calls = []  # _Call per module that returned in this forward, for the NaN search
        self.reported = set()  # non-finite phases already reported
        # backward and optimizer steps
        self.grad_order = []  # parameters in the order the running backward accumulated them
        self.callback_queued = False
        self.backward_norms = None  # (parameters, their grad norms) at the end of the last backward
        self.optimizer = None
        self.steps = 0
        self.last_step_end = self.start
        self.statm = _open_statm()
        self._reset_step()

    def _reset_step(self):
        self.sampling = self._is_sampled(self.steps + 1)
        self.collected = False  # the step's first training forward has been looked at
        self.step_started = None
        self.step_tokens = 0
        self.loss_sum, self.loss_count = 0.0, 0
        self.act_rms = {}  # module name -> 0-dim tensor, read out when the step ends
        self.attention = {}  # module name -> (entropy, max_logit) 0-dim tensors, heads
        self.grad_stats = ([], [])  # names of the parameters with a gradient, norms at optimizer.step()
        self.before = None  # copies of the parameters before a sampled step

    def _is_sampled(self, step):
        return step <= self.first or step % self.every == 0

    # ------------------------------------------------------------------ installation

    def install(self):
        from torch.nn.modules import module as nn_module
        from torch.optim import optimizer as optim_module

        self.handles["forward"] = [
            nn_module.register_module_forward_pre_hook(self._guard("forward", self._on_forward_pre)),
            # always_call: the stack of running modules stays right when a forward raises
            nn_module.register_module_forward_hook(self._guard("forward", self._on_forward), always_call=True),
        ]
        self.handles["optimizer"] = [
            optim_module.register_optimizer_step_pre_hook(self._guard("optimizer", self._on_step_pre)),
            optim_module.register_optimizer_step_post_hook(self._guard("optimizer", self._on_step_post)),
        ]
        functional = torch.nn.functional
        self._wrap(functional, "cross_entropy", self._observe_cross_entropy,
                   lambda: self.last_root_training and torch.is_grad_enabled())
        # F.softmax calls Tensor.softmax, so wrapping the method covers it without counting twice
        self._wrap(torch.Tensor, "softmax", self._observe_softmax, lambda: self.collect)
        self._wrap(torch, "softmax", self._observe_softmax, lambda: self.collect)
        self._wrap(functional, "scaled_dot_product_attention", self._observe_sdpa, lambda: self.collect)
        self._wrap_scaler_step()
        atexit.register(self._guard("exit", self._on_exit))

    def _guard(self, feature, fn):
        """Run fn; an exception inside the probe is recorded once and switches the feature off.
        Returns None whatever happens, so no hook ever alters the training's arguments or outputs."""

        def guarded(*args):
            if feature in self.disabled:
                return None
            try:
                fn(*args)
            except Exception as exc:
                self._fail(feature, exc)
            return None

        return guarded

    def _fail(self, feature, exc):
        self.disabled.add(feature)
        for handle in self.handles.pop(feature, []):
            handle.remove()
        if feature == "forward":
            self.training = self.collect = False
            self.stack.clear()
        try:
            self.writer.write(_error_record(feature, exc))
        except Exception:
            pass  # nowhere left to report to; the training goes on

    def _wrap(self, owner, attr, observe, wanted):
        """Replace owner.attr by a function that calls the original with the same arguments and
        returns its result, then lets the probe look at both when wanted() (a cheap flag) says so."""
        original = getattr(owner, attr)
        try:
            signature = inspect.signature(original)
        except (TypeError, ValueError):
            signature = None  # builtins: their observers read positional arguments themselves
        observe = self._guard(f"{owner.__name__}.{attr}", observe)

        @functools.wraps(original)
        def wrapper(*args, **kwargs):
            result = original(*args, **kwargs)
            if wanted():
                observe(signature, result, args, kwargs)
            return result

        setattr(owner, attr, wrapper)

    def _wrap_scaler_step(self):
        """GradScaler.step() skips optimizer.step() when the gradients are not finite, so no step
        hook fires: notice that here and count the skipped step."""
        scaler_class = torch.amp.GradScaler
        original = scaler_class.step
        after = self._guard("GradScaler.step", self._after_scaler_step)

        @functools.wraps(original)
        def step(scaler, optimizer, *args, **kwargs):
            steps_before = self.steps
            result = original(scaler, optimizer, *args, **kwargs)
            after(scaler, optimizer, steps_before)
            return result

        scaler_class.step = step

    def _meta(self):
        return {
            "type": "meta", "rank": self._rank(), "world_size": self._world_size(), "pid": os.getpid(),
            "torch": torch.__version__, "device": str(self.device or "cpu"), "threads": torch.get_num_threads(),
            "argv": list(sys.argv), "every": self.every, "first": self.first, "time": self.start_unix,
        }

    def _rank(self):
        if "RANK" in os.environ:
            return int(os.environ["RANK"])
        dist = torch.distributed
        return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0

    def _world_size(self):
        if "WORLD_SIZE" in os.environ:
            return int(os.environ["WORLD_SIZE"])
        dist = torch.distributed
        return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1

    def _on_exit(self):
        if self.writer.file is not None:
            self.writer.write({"type": "end", "steps": self.steps, "reason": "exit"})

    # ------------------------------------------------------------------ module forwards

    def _on_forward_pre(self, module, args):
        if not self.stack:
            self._start_root(module, args)
        self.stack.append(module)

    def _on_forward(self, module, args, output):
        stack = self.stack
        if stack and stack[-1] is module:
            stack.pop()
        elif module in stack:
            del stack[stack.index(module):]
        if self.training:
            self._record_output(module, args, output)
        if not stack:
            self._end_root(output)

    def _start_root(self, root, args):
        if root not in self.roots and next(root.parameters(), None) is None:
            self.training = False  # a loss module called on its own is not the model
            return
        # a forward re-run inside backward is activation checkpointing, not a new forward
        self.training = root.training and torch.is_grad_enabled() and torch._C._current_graph_task_id() == -1
        self.last_root_training = self.training
        if not self.training:
            return
        if root not in self.roots:
            self._discover_root(root)
        if self.step_started is None:
            self.step_started = time.perf_counter()
        self.step_tokens += _count_tokens(args)
        self.collect = self.sampling and not self.collected
        self.rms_modules = self.roots[root]
        self.calls = []
        # a backward that raised never ran its end-of-backward callback
        self.grad_order, self.callback_queued = [], False

    def _discover_root(self, root):
        wrapped = isinstance(root, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel))
        model = root.module if wrapped else root
        for name, module in root.named_modules():
            self.names.setdefault(module, _strip_wrapper(name, wrapped))
        for name, param in root.named_parameters():
            if param in self.param_names:
                continue
            self.param_names[param] = _strip_wrapper(name, wrapped)
            if param.requires_grad:
                param.register_post_accumulate_grad_hook(self._guard("backward", self._on_grad_accumulated))
        self.roots[root] = set(_activation_modules(model))
        if self.device is None:
            self.device = next(root.parameters()).device
        self.writer.ensure_open()

    def _record_output(self, module, args, output):
        if self.collect and module in self.rms_modules:
            name = self.names[module]
            tensor = next(_tensors(output), None)
            if name not in self.act_rms and tensor is not None and tensor.is_floating_point():
                norm = torch._foreach_norm([tensor.detach()], 2, dtype=_wide_dtype(tensor))[0]
                self.act_rms[name] = norm.float() / math.sqrt(max(1, tensor.numel()))
        if "forward" not in self.reported:
            caller = self.stack[-1] if self.stack else None
            self.calls.append(_Call(module, caller, _weak_inputs(args), _float_sum(output)))

    def _end_root(self, output):
        if self.training:
            root_sum = self.calls[-1].output_sum if self.calls else None
            if root_sum is not None and not math.isfinite(float(root_sum)):
                self._report_forward()
            self.calls = []
            self.collected = self.collected or self.collect
        self.training = self.collect = False

    def _report_forward(self):
        """Blame the first module whose output went non-finite although its inputs were finite."""
        calls = self.calls
        sums = [(i, float(call.output_sum)) for i, call in enumerate(calls) if call.output_sum is not None]
        first, value = next((i, v) for i, v in sums if not math.isfinite(v))
        origin = self._walk_to_origin(calls, first)
        name = self._name(calls[origin].module)
        if origin == first:
            message = f"sum of the output: {value}"
        else:
            message = (f"made in the module's own code; first seen in the input of "
                       f"{self._name(calls[first].module)!r}: {_describe(_nonfinite_input(calls[first]))}")
        if _nonfinite_input(calls[origin]) is not None:
            message += f"; the input of {name!r} was already non-finite"
        self._report("forward", name, "output", message)

    def _walk_to_origin(self, calls, index):
        """From a module that was handed a non-finite input, up through its callers to the first
        one whose inputs were finite: the NaN was made in that module's own code."""
        while _nonfinite_input(calls[index]) is not None:
            caller = calls[index].caller
            parent = next((j for j in range(index + 1, len(calls)) if calls[j].module is caller), None)
            if parent is None:
                break  # the root itself was given a non-finite input
            index = parent
        return index

    def _name(self, module):
        return self.names.get(module, type(module).__name__)

    def _innermost_name(self):
        return self._name(self.stack[-1]) if self.stack else ""

    def _report(self, phase, module, tensor, message, **extra):
        self.reported.add(phase)
        self.writer.write({
            "type": "nonfinite", "step": self.steps + 1, "phase": phase, "module": module,
            "tensor": tensor, **extra, "message": message,
        })

    # ------------------------------------------------------------------ wrapped functions

    def _observe_cross_entropy(self, signature, result, args, kwargs):
        arguments = signature.bind(*args, **kwargs).arguments
        loss = result.detach()
        if loss.dim() > 0 or arguments.get("reduction") == "sum":
            loss = loss.sum() / _count_targets(arguments["input"], arguments["target"],
                                               arguments.get("ignore_index", -100))
        value = float(loss)
        self.loss_sum += value
        self.loss_count += 1
        if not math.isfinite(value) and "loss" not in self.reported:
            self._report("loss", self._innermost_name(), "loss", _describe(result.detach()))

    def _observe_softmax(self, signature, result, args, kwargs):
        scores = args[0]
        dim = args[1] if len(args) > 1 else kwargs.get("dim")
        if not self.stack or scores.dim() != 4 or dim is None or dim % 4 == 0:
            return
        name = self._innermost_name()
        if name not in self.attention:
            # the first sequence of the batch; the softmax dimension shifts down by one
            self.attention[name] = self._attention_stats(scores[0], result[0], dim % 4 - 1)

    def _observe_sdpa(self, signature, result, args, kwargs):
        query, key = args[0], args[1]
        if not self.stack or query.dim() != 4:
            return
        name = self._innermost_name()
        if name in self.attention:
            return
        attn_mask = args[3] if len(args) > 3 else kwargs.get("attn_mask")
        is_causal = args[5] if len(args) > 5 else kwargs.get("is_causal", False)
        scores = self._sdpa_scores(query, key, attn_mask, is_causal, kwargs.get("scale"))  # keyword-only
        self.attention[name] = self._attention_stats(scores, torch.special.softmax(scores, -1), -1)

    def _sdpa_scores(self, query, key, attn_mask, is_causal, scale):
        """The pre-softmax scores SDPA used, for the first sequence of the batch: (heads, L, S)."""
        q, k = query[0].detach(), key[0].detach()
        if k.size(0) != q.size(0):  # grouped-query attention: each key head serves several queries
            k = k.repeat_interleave(q.size(0) // k.size(0), dim=0)
        scale = scale if scale is not None else 1.0 / math.sqrt(q.size(-1))
        scores = (q @ k.transpose(-2, -1)).float() * scale
        length, keys = scores.shape[-2:]
        if is_causal:
            causal = torch.ones(length, keys, dtype=torch.bool, device=scores.device).tril()
            scores = scores.masked_fill(~causal, float("-inf"))
        if attn_mask is not None:
            mask = attn_mask.detach().expand(query.size(0), query.size(1), length, keys)[0]
            if mask.dtype == torch.bool:
                scores = scores.masked_fill(~mask, float("-inf"))
            else:
                scores = scores + mask.float()
        return scores

    def _attention_stats(self, scores, probs, dim):
        """Mean row entropy (nats) and largest finite score; kept as tensors until the step ends."""
        scores, probs = scores.detach().float(), probs.detach().float()
        entropy = torch.special.entr(probs).sum(dim).nanmean()
        max_logit = scores.masked_fill(~scores.isfinite(), float("-inf")).amax()
        return entropy, max_logit, scores.size(0)

    # ------------------------------------------------------------------ backward

    def _on_grad_accumulated(self, param):
        if not self.callback_queued:
            self.callback_queued = True
            engine = torch.autograd.Variable._execution_engine
            engine.queue_callback(self._guard("backward", self._after_backward))
        self.grad_order.append(param)

    def _after_backward(self):
        """Norms of the gradients as backward left them, before any clipping: kept for the NaN
        search (clipping by a NaN norm would make every gradient NaN) and grad_norm_backward."""
        params, self.grad_order, self.callback_queued = self.grad_order, [], False
        params = [p for p in params if p.grad is not None]
        if params:
            self.backward_norms = (params, self._norms([p.grad for p in params]))

    def _summarise_backward(self):
        """Global norm of the last backward's gradients; reports the first non-finite one."""
        if self.backward_norms is None:
            return None
        params, norms = self.backward_norms
        self.backward_norms = None
        values = norms.tolist()
        if "backward" not in self.reported:
            bad = next((i for i, v in enumerate(values) if not math.isfinite(v)), None)
            if bad is not None:
                name = self.param_names.get(params[bad], "")
                self._report("backward", name.rpartition(".")[0], "grad", param=name,
                             message=f"gradient L2 norm at the end of backward: {values[bad]}")
        return math.sqrt(sum(v * v for v in values))

    def _norms(self, tensors):
        """L2 norm of each tensor, as float32."""
        tensors = [t.coalesce().values() if t.is_sparse else t for t in tensors]  # sparse embedding grads
        norms = torch._foreach_norm(tensors, 2, dtype=_wide_dtype(*tensors))
        device = norms[0].device
        if any(n.device != device for n in norms):  # a model spread over several devices
            norms = [n.to(device) for n in norms]
        return torch.stack(norms).float()

    # ------------------------------------------------------------------ optimizer steps

    def _on_step_pre(self, optimizer, args, kwargs):
        if self.optimizer is None:
            self.optimizer = optimizer
        if optimizer is not self.optimizer:
            return
        self._measure_grads(optimizer)
        if self.sampling:
            self.before = [p.detach().clone() for _, p in self._named_params(optimizer)]

    def _on_step_post(self, optimizer, args, kwargs):
        if optimizer is self.optimizer:
            self._finish_step(optimizer, skipped=False)

    def _after_scaler_step(self, scaler, optimizer, steps_before):
        if self.steps != steps_before or not scaler.is_enabled():
            return  # optimizer.step() ran and was counted
        if self.optimizer is None:
            self.optimizer = optimizer  # the first steps of an fp16 run are often skipped
        if optimizer is self.optimizer:
            self._measure_grads(optimizer)
            self._finish_step(optimizer, skipped=True)

    def _named_params(self, optimizer):
        return [
            (self.param_names.get(p, f"group{g}.param{i}"), p)
            for g, group in enumerate(optimizer.param_groups) for i, p in enumerate(group["params"])
        ]

    def _measure_grads(self, optimizer):
        named = [(name, p) for name, p in self._named_params(optimizer) if p.grad is not None]
        norms = self._norms([p.grad for _, p in named]).tolist() if named else []
        self.grad_stats = ([name for name, _ in named], norms)

    def _finish_step(self, optimizer, skipped):
        grad_norm_backward = self._summarise_backward()
        self.steps += 1
        now = time.perf_counter()
        dt = now - (self.step_started or self.last_step_end)
        self.last_step_end = now
        names, norms = self.grad_stats
        record = {
            "type": "step", "step": self.steps, "t": now - self.start, "dt_ms": dt * 1000,
            "loss": self.loss_sum / self.loss_count if self.loss_count else None,
            "lr": [_number(group.get("lr")) for group in optimizer.param_groups],
            "weight_decay": [_number(group.get("weight_decay")) for group in optimizer.param_groups],
            "grad_norm": math.sqrt(sum(v * v for v in norms)) if norms else None,
            "grad_norm_backward": grad_norm_backward,
            "tokens": self.step_tokens, "tokens_per_s": self.step_tokens / dt if dt > 0 else None,
            **self._memory(), "nonfinite_grads": sum(not math.isfinite(v) for v in norms),
        }
        if skipped:
            record["skipped"] = True
        self.writer.write(record)
        if self.sampling:
            self.writer.write(self._detail(optimizer, dict(zip(names, norms)), skipped))
        self._reset_step()

    def _detail(self, optimizer, grad_norms, skipped):
        named = self._named_params(optimizer)
        after = [p.detach() for _, p in named]
        param_norms = self._norms(after).tolist() if after else []
        update_ratio = {}
        if self.before is not None and not skipped:
            changes = self._norms(torch._foreach_sub(after, self.before)).tolist()
            before = self._norms(self.before).tolist()
            update_ratio = {name: _ratio(c, b) for (name, _), c, b in zip(named, changes, before)}
        return {
            "type": "detail", "step": self.steps, "grad_norm": grad_norms, "update_ratio": update_ratio,
            "param_norm": {name: v for (name, _), v in zip(named, param_norms)},
            "act_rms": {name: float(v) for name, v in self.act_rms.items()},
            "attention": {
                name: {"entropy": float(entropy), "max_logit": _finite_or_none(float(max_logit)), "heads": heads}
                for name, (entropy, max_logit, heads) in self.attention.items()
            },
        }

    def _memory(self):
        cuda = torch.cuda
        on_cuda = cuda.is_initialized()  # asking anything more would initialise CUDA
        rss, peak = _rss_mb(self.statm), _peak_rss_mb()
        if rss is not None and peak is not None:
            peak = max(peak, rss)  # the kernel updates its high-water mark lazily
        return {
            "rss_mb": rss, "peak_rss_mb": peak,
            "cuda_mem_mb": cuda.memory_allocated() / 2**20 if on_cuda else None,
            "cuda_peak_mb": cuda.max_memory_allocated() / 2**20 if on_cuda else None,
        }


# ---------------------------------------------------------------------- helpers


def _strip_wrapper(name, wrapped):
    """Names as the wrapped model knows them: DDP's `module.blocks.0` is `blocks.0`."""
    if not wrapped:
        return name
    return "" if name == "module" else name.removeprefix("module.")


def _activation_modules(model):
    """The blocks whose output RMS is recorded: the children of the model's module lists, and
    its other direct children (embedding, final norm, head); a Sequential's own children."""
    containers = (torch.nn.ModuleList, torch.nn.Sequential, torch.nn.ModuleDict)
    if isinstance(model, containers):
        return list(model.children())
    modules = []
    for child in model.children():
        modules.extend(child.children() if isinstance(child, containers) else [child])
    return modules


def _tensors(obj):
    """Tensors in a module's arguments or output (tensor, tuple, list or dict, nested)."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            yield from _tensors(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _tensors(item)


def _weak_inputs(args):
    """(weak reference, version) of each float tensor among a module's arguments: an in-place
    change bumps the version, so an unchanged version means unchanged values."""
    refs = []
    for arg in args:  # a flat loop for the usual tuple of tensors; nested containers recurse
        for tensor in (arg,) if isinstance(arg, torch.Tensor) else _tensors(arg):
            if tensor.is_floating_point():
                refs.append((weakref.ref(tensor), _version(tensor)))
    return refs


def _version(tensor):
    # inference tensors (made under inference_mode) have no version and cannot change outside it
    return -1 if tensor.is_inference() else tensor._version


def _count_tokens(args):
    tensor = next(_tensors(args), None)
    if tensor is None:
        return 0
    if not tensor.is_floating_point():
        return tensor.numel()  # token ids
    return tensor.numel() // tensor.size(-1) if tensor.dim() else 1


def _count_targets(logits, target, ignore_index):
    """Targets a summed cross_entropy added up: those not ignored, or one per row of class
    probabilities."""
    if target.is_floating_point():
        classes = logits.size(1) if logits.dim() >= 2 else logits.size(0)
        return max(1, logits.numel() // classes)
    return int((target != ignore_index).sum())


def _nonfinite_input(call):
    """The call's first input that is not finite; None when none is known to be. An input that
    nothing kept alive (autograd keeps most) or that was changed in place since counts as finite."""
    for ref, version in call.inputs:
        tensor = ref()
        if tensor is not None and _version(tensor) == version and not bool(tensor.detach().isfinite().all()):
            return tensor
    return None


def _float_sum(output):
    """One cheap reduction, read only if the root's output is not finite: a NaN or Inf anywhere
    makes the sum non-finite (so does a finite output whose sum overflows, beyond 3e38; fp16
    sums are taken in float32). None when there is no float tensor."""
    if isinstance(output, torch.Tensor):  # the common case, kept fast
        return output.detach().sum(dtype=_wide_dtype(output)) if output.is_floating_point() else None
    sums = [t.detach().sum(dtype=_wide_dtype(t)) for t in _tensors(output) if t.is_floating_point()]
    return functools.reduce(operator.add, sums) if sums else None


def _wide_dtype(*tensors):
    """dtype for a sum or norm: float32 only where the tensors' own type would overflow (fp16);
    otherwise the reduction accumulates in float32 anyway and only rounds its result. Asking
    for float32 costs a float32 copy of the whole tensor: ten times the reduction itself on a
    bf16 logits tensor in a training step, where the copy's fresh pages fault."""
    for tensor in tensors:  # a loop, not any(): this runs for every module of every forward
        if tensor.dtype == torch.float16:
            return torch.float32
    return None


def _describe(tensor):
    values = tensor.detach().flatten()
    bad = ~values.isfinite()
    flat_index = int(bad.nonzero()[0])
    nans = int(values.isnan().sum())
    return (
        f"first non-finite value: {values[flat_index].item()} at index {_unravel(flat_index, tensor.shape)}; "
        f"{nans} NaN and {int(bad.sum()) - nans} Inf among {values.numel()} values, "
        f"shape {list(tensor.shape)}, {str(tensor.dtype).removeprefix('torch.')}"
    )


def _unravel(flat_index, shape):
    index = []
    for size in reversed(shape):
        index.append(flat_index % size)
        flat_index //= size
    return tuple(reversed(index))


def _number(value):
    return None if value is None else float(value)


def _ratio(change, before):
    if before > 0:
        return change / before
    return 0.0 if change == 0 else math.inf


def _finite_or_none(value):
    return value if math.isfinite(value) else None


def _open_statm():
    """Kept open: re-reading an open /proc file costs a tenth of opening it every step."""
    try:
        return os.open("/proc/self/statm", os.O_RDONLY)
    except OSError:
        return None  # not Linux


def _rss_mb(statm):
    if statm is None:
        return None
    return int(os.pread(statm, 128, 0).split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb():
    try:
        import resource
    except ImportError:
        return None  # Windows
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux
