"""Distributed: an all_reduce's op swapped (ReduceOp.SUM <-> AVG), a collective or barrier removed."""

import libcst as cst

from bug_synth.operators.family import Family, family
from bug_synth.operators.shapes import callee_name, names_in, receiver_name
from bug_synth.operators.source import Site

OPS = {"SUM": "AVG", "AVG": "SUM"}
COLLECTIVES = frozenset({"barrier", "all_reduce", "all_gather", "all_gather_into_tensor", "broadcast", "reduce",
                         "reduce_scatter", "reduce_scatter_tensor", "all_to_all"})
DIST_RECEIVERS = frozenset({"dist", "torch.distributed", "distributed"})
CONSEQUENCE = {"barrier": "the other ranks do not wait for this point and may race ahead",
               "broadcast": "each rank keeps its own value"}
COLLECTIVE_TERMS = {"barrier": ("barrier", "sync", "wait"),
                    "broadcast": ("broadcast", "sync", "rank 0", "master")}
REDUCE_TERMS = ("all_reduce", "all-reduce", "allreduce", "reduce", "sync", "all_gather", "all-gather", "collective")


@family
class ReduceOpSwapped(Family):
    name = "reduce-op-swapped"
    theme = "distributed"
    description = "ReduceOp.SUM <-> ReduceOp.AVG in a collective"

    def sites(self, source):
        for attribute in source.nodes(cst.Attribute):
            old = attribute.attr.value
            if old not in OPS or not source.code(attribute.value).endswith("ReduceOp"):
                continue
            new = OPS[old]
            effect = "averages where it should sum" if new == "AVG" else "sums where it should average"
            yield Site(
                attribute, attribute.with_changes(attr=cst.Name(new)),
                f"the all_reduce uses ReduceOp.{new} instead of ReduceOp.{old} {source.where(attribute)}, so it "
                f"{effect} over the ranks",
                (REDUCE_TERMS + ("reduceop",), ("sum", "avg", "averag", "mean", "world_size", "world size")))


@family
class CollectiveDropped(Family):
    name = "collective-dropped"
    theme = "distributed"
    description = "a dist.barrier() / all_reduce / broadcast statement removed"

    def sites(self, source):
        for line in source.nodes(cst.SimpleStatementLine):
            if len(line.body) != 1 or not isinstance(line.body[0], cst.Expr):
                continue
            call = line.body[0].value
            if not isinstance(call, cst.Call) or callee_name(call) not in COLLECTIVES:
                continue
            if receiver_name(call) not in DIST_RECEIVERS and not isinstance(call.func, cst.Name):
                continue
            name = callee_name(call)
            consequence = CONSEQUENCE.get(name, f"each rank keeps its local {source.code(call.args[0].value)}"
                                          if call.args else "each rank keeps its local value")
            yield Site(
                line, None,
                f"{source.code(line)} is missing {source.where(line)}, so {consequence}",
                (COLLECTIVE_TERMS.get(name, REDUCE_TERMS),
                 ("missing", "removed", "dropped", "never", "not called", "rank", "local", "without")
                 + names_in(call.args[0].value if call.args else call, limit=2)))
