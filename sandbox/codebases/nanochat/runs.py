"""Running the real karpathy/nanochat offline: our data in its layout, its own scripts, our probe.

* Data: pretraining shards in the parquet layout nanochat/dataset.py reads — `*.parquet` files
  with a `text` column in `$NANOCHAT_BASE_DIR/base_data_climbmix/`, the last in sorted order
  being validation — written from picochat's story grammar (sandbox/templates/picochat), so
  nothing is downloaded. Each training gets its own NANOCHAT_BASE_DIR under the state directory.
* Tokenizer: nanochat's own `python -m scripts.tok_train` (rustbpe) on those shards.
* Training: `python -m scripts.base_train` with a tiny config, through the runner (limits,
  process group, the telemetry probe) with TORCHDYNAMO_DISABLE=1: torch.compile then runs
  eagerly (on a CPU its compile took 57 s of a 104 s run) and the probe's global hooks fire.
  The device is nanochat's choice (CUDA, then MPS, then CPU) unless the request names one.
* Baselines: the pristine checkout's run of the same request, cached like the built-in's.

nanochat prints a debiased EMA of the training loss (`loss:`) and `Step N | Validation bpb: x`;
the log view shows those, the probe records the raw loss of every step.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from pydantic import BaseModel, Field

from sandbox import runner
from sandbox.baselines import baseline_key, cached
from sandbox.scenarios import check_ranged_flags
from sandbox.training import (
    Training, TrainingRequest, new_id, process_identity, run_single_stage, save, trainings_dir,
)

DATA_SUBDIR = "base_data_climbmix"  # nanochat/dataset.py: DATA_DIR = <base dir>/base_data_climbmix
TRAIN_SHARDS = 2


# The base_train flags a request may add (name: low, high): learning rates, depth and batch sizes.
# Every other flag is refused: some set the number of steps past the cap (--num-iterations: use
# `steps`; --target-flops, --target-param-data-ratio), resume from a checkpoint the request names
# (--resume-from-step), or write outside the run (--model-tag, --save-every).
ACCEPTED_FLAGS = {
    "embedding-lr": (0.0, 10.0), "unembedding-lr": (0.0, 10.0), "matrix-lr": (0.0, 10.0), "scalar-lr": (0.0, 10.0),
    "weight-decay": (0.0, 10.0), "warmup-steps": (0, 2000), "warmdown-ratio": (0.0, 1.0), "final-lr-frac": (0.0, 1.0),
    "depth": (1, 12), "device-batch-size": (1, 64), "total-batch-size": (1, 65536),
}
MAX_STEPS = 2000


def check_request(request):
    """Refuse steps past the cap and any flag outside ACCEPTED_FLAGS or its range (a request made with
    model_copy skips pydantic's checks, so this is what a run relies on)."""
    check_ranged_flags(request.steps, request.args, MAX_STEPS, ACCEPTED_FLAGS, "nanochat")


class NanochatRequest(BaseModel):
    """A short base_train run. The defaults are the fastest setting found on a 2-core CPU whose
    loss still falls steadily: 60 steps of 2 micro-batches in about half a minute."""
    steps: int = Field(60, ge=1, le=MAX_STEPS)
    depth: int = 2
    max_seq_len: int = 128
    device_batch_size: int = 8
    total_batch_size: int = 2048
    warmup_steps: int = 5
    eval_every: int = 20
    eval_tokens: int = 4096
    device_type: str = Field("", description="cuda, cpu or mps; empty: nanochat autodetects")
    args: list[str] = Field(default_factory=list, description="further base_train flags (--name=value)")
    num_stories: int = 20000
    vocab_size: int = 4096
    data_seed: int = 42
    threads: int = Field(default_factory=lambda: int(os.environ.get("BUGDRILL_THREADS", "1")))
    wall_s: float = 900.0
    memory_mb: int = 8192

    def flags(self):
        flags = [f"--num-iterations={self.steps}", f"--depth={self.depth}", f"--max-seq-len={self.max_seq_len}",
                 f"--device-batch-size={self.device_batch_size}", f"--total-batch-size={self.total_batch_size}",
                 f"--warmup-steps={self.warmup_steps}", f"--eval-every={self.eval_every}",
                 f"--eval-tokens={self.eval_tokens}", "--head-dim=64", "--window-pattern=L", "--run=dummy",
                 # the CORE metric and the samples need an eval bundle from the internet
                 "--core-metric-every=-1", "--sample-every=-1"]
        if self.device_type:
            flags.append(f"--device-type={self.device_type}")
        return flags + list(self.args)


def stories(num_stories, seed):
    """Train and validation texts from the built-in codebase's story grammar (deduplicated,
    split before anything is learned from them)."""
    from sandbox.views import corpus_grammar

    grammar = corpus_grammar()
    train, val = grammar.split_train_val(grammar.generate_stories(num_stories, seed), 0.1, seed)
    return [s.text for s in train], [s.text for s in val]


def write_shards(base_dir, num_stories=20000, seed=42):
    """TRAIN_SHARDS training shards and one validation shard, last in sorted order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    directory = Path(base_dir) / DATA_SUBDIR
    directory.mkdir(parents=True, exist_ok=True)
    train, val = stories(num_stories, seed)
    parts = [train[i::TRAIN_SHARDS] for i in range(TRAIN_SHARDS)] + [val]
    for index, texts in enumerate(parts):
        tmp = directory / f"shard_{index:05d}.parquet.tmp"
        pq.write_table(pa.table({"text": texts}), tmp, row_group_size=1024)
        tmp.rename(directory / f"shard_{index:05d}.parquet")
    return directory


def prepare_data(base_dir, codebase, num_stories=20000, vocab_size=4096, seed=42, timeout=300, untrusted=False):
    """Shards, then a tokenizer trained by the codebase's own scripts/tok_train.py; done once per
    base directory (a marker file says with which settings). The tokenizer's training is the
    checkout's code: an `untrusted` one (a workspace) runs it in the jail, through the runner."""
    base_dir = Path(base_dir)
    marker = base_dir / "bugdrill-data.json"
    settings = {"num_stories": num_stories, "vocab_size": vocab_size, "seed": seed}
    if marker.exists() and json.loads(marker.read_text()) == settings:
        return base_dir
    write_shards(base_dir, num_stories, seed)
    argv = ["-m", "scripts.tok_train", "--max-chars=5000000", f"--vocab-size={vocab_size}"]
    env = {"NANOCHAT_BASE_DIR": str(base_dir), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    if untrusted:
        ended = runner.execute(runner.RunSpec(workspace=str(codebase), argv=argv, env=env, probe=False,
                                              quota_dirs=[str(base_dir)], limits=runner.Limits(wall_s=timeout),
                                              label="tokenizer", untrusted=True))
        failed = ended.state != "finished"
        why = ended.message + ": " + runner.read_log(ended.run_id, "stderr", tail_lines=8)[-600:]
    else:
        result = subprocess.run([sys.executable, *argv], cwd=codebase, env={**os.environ, **env,
                                "PYTHONDONTWRITEBYTECODE": "1"}, capture_output=True, text=True, timeout=timeout,
                                stdin=subprocess.DEVNULL)
        failed, why = result.returncode != 0, result.stderr[-600:]
    if failed:
        raise runner.RunError(f"nanochat's tokenizer training failed: {why}")
    marker.write_text(json.dumps(settings))
    return base_dir


def train(workspace, request: NanochatRequest, label="nanochat", on_progress=None, training_id=None,
          trusted=False) -> Training:
    """Prepare data and run base_train once in `workspace` under the runner, with the probe.
    Same contract as sandbox.training.train: on_progress(stage, stages, RunResult), and
    `training_id` (from new_id) lets a caller record the run before it starts; only a pristine
    checkout is `trusted`, anything else runs in the jail."""
    check_request(request)
    argv = ["-m", "scripts.base_train", *request.flags()]
    as_training = TrainingRequest(scenario="base", steps=request.steps, args=argv[2:], threads=request.threads,
                                  wall_s=request.wall_s, memory_mb=request.memory_mb)
    training = Training(id=training_id or new_id(), workspace=str(Path(workspace).resolve()), request=as_training,
                        started=time.time(), owner=process_identity())
    data_dir = trainings_dir() / training.id / "data"
    data_dir.mkdir(parents=True)
    save(training)
    try:
        prepare_data(data_dir, training.workspace, request.num_stories, request.vocab_size, request.data_seed,
                     untrusted=not trusted)
    except (runner.RunError, subprocess.TimeoutExpired) as error:
        training.state, training.message = "failed", str(error)
        save(training)
        return training
    env = {"NANOCHAT_BASE_DIR": str(data_dir), "OMP_NUM_THREADS": str(request.threads), "TORCHDYNAMO_DISABLE": "1"}
    spec = runner.RunSpec(workspace=training.workspace, argv=argv, env=env, quota_dirs=[str(data_dir)], label=label,
                          limits=runner.Limits(wall_s=request.wall_s, memory_mb=request.memory_mb),
                          untrusted=not trusted)
    return run_single_stage(training, spec, on_progress)


def baseline(codebase, request: NanochatRequest, on_progress=None) -> Training:
    """The cached run of the pristine checkout for this request, run now if there is none."""
    return cached(baseline_key(codebase, request), codebase, request,
                  lambda workspace: train(workspace, request, label="baseline", on_progress=on_progress,
                                          trusted=True))
