"""The samples view scores samples by the corpus grammar, read from the pristine template."""

from sandbox.views import corpus_grammar, parsed


def test_the_grammar_parses_its_own_stories_and_not_their_truncations():
    stories = [sample.text for sample in corpus_grammar().generate_stories(5, 11)]
    assert parsed(stories) == 5
    assert parsed([story[:-4] for story in stories]) == 0


def test_the_log_and_grad_views_show_the_step_where_the_run_departs_from_its_baseline():
    """The incident summary names the step the curves first depart at (step 2 here); a 100-step
    run's tables show every 4th step, and they must show that one too, or the figures it quotes
    cannot be checked. Found by an LLM candidate."""
    from pathlib import Path

    from sandbox.logparse import ParsedLog
    from sandbox.rundata import RunData
    from sandbox.views import render

    def run(departs_at):
        losses = [3.0 - 0.01 * s + (0.007 if s >= departs_at else 0.0) for s in range(1, 101)]
        log = ParsedLog(train=[{"step": s, "loss": v, "lr": 1e-3} for s, v in zip(range(1, 101), losses)])
        steps = [{"type": "step", "step": s, "grad_norm": 1.0 + (0.5 if s >= departs_at else 0.0)} for s in range(1, 101)]
        return RunData(run_dir=Path("."), spec={"argv": ["-m", "scripts.base_train"]}, result={"state": "finished"},
                       log=log, stdout="", stderr="", telemetry={0: steps})

    bugged, baseline = run(2), run(1000)
    for view in ("log", "grad_norms"):
        rows = [line.split()[0] for line in render(view, bugged, baseline).text.splitlines() if line[:1] == " "]
        assert "2" in rows and "3" not in rows, (view, rows[:8])
    quiet_rows = [line.split()[0] for line in render("log", baseline, baseline).text.splitlines() if line[:1] == " "]
    assert "2" not in quiet_rows
