"""The samples view scores samples by the corpus grammar, read from the pristine template."""

from sandbox.views import corpus_grammar, parsed


def test_the_grammar_parses_its_own_stories_and_not_their_truncations():
    stories = [sample.text for sample in corpus_grammar().generate_stories(5, 11)]
    assert parsed(stories) == 5
    assert parsed([story[:-4] for story in stories]) == 0
