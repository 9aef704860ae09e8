"""Behavioural tests of picochat's text generator (dataset.py) and BPE tokenizer (tokenizer.py)."""

import math
import random
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "sandbox/templates/picochat"))
from picochat import dataset, tokenizer  # noqa: E402
from picochat.tokenizer import SPECIAL_TOKENS, Tokenizer  # noqa: E402


@pytest.fixture(scope="module")
def stories():
    return dataset.generate_stories(2000, seed=0)


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.train([s.text for s in dataset.generate_stories(5000, seed=1)], vocab_size=512)


# ----------------------------------------------------------------------------- stories

def test_same_seed_gives_same_stories_and_different_seed_different_ones():
    assert dataset.generate_stories(50, seed=3) == dataset.generate_stories(50, seed=3)
    assert dataset.generate_stories(50, seed=3) != dataset.generate_stories(50, seed=4)


def test_generation_leaves_the_global_random_state_alone():
    state = random.getstate()
    dataset.generate_stories(10, seed=0)
    dataset.generate_chats(10, seed=0)
    dataset.generate_classification(10, seed=0)
    assert random.getstate() == state


def test_every_generated_story_has_exactly_one_derivation(stories):
    assert [dataset.count_derivations(s.text) for s in stories] == [1] * len(stories)


def test_text_the_grammar_cannot_produce_has_no_derivation(stories):
    fable = next(s.text for s in stories if s.template == "fable")
    name = re.search(r"named (\w+)\.", fable).group(1)
    assert dataset.count_derivations(fable.replace(name, "Zed")) == 0  # a name not in the world
    other = "Leo" if name != "Leo" else "Mia"  # a real name, but the story goes on about `name`
    assert dataset.count_derivations(fable.replace(f"named {name}.", f"named {other}.")) == 0
    assert dataset.count_derivations(fable + " ") == 0
    assert dataset.count_derivations(fable[:-1]) == 0
    assert dataset.count_derivations("") == 0
    assert dataset.count_derivations("Did you know? A cow says woof. Now you know!") == 0
    assert dataset.count_derivations("Did you know? A cow says moo. Now you know!") == 1


def test_parser_and_sampler_agree_on_each_storys_logprob(stories):
    for s in stories[:500]:
        assert dataset.logprob_of(s.text) == pytest.approx(s.logprob, abs=1e-9)


def test_frequent_stories_appear_as_often_as_their_logprob_says():
    samples = dataset.generate_stories(20000, seed=5)
    counts = Counter(s.text for s in samples)
    logprob = {s.text: s.logprob for s in samples}
    for text, seen in counts.most_common(5):
        p = math.exp(logprob[text])
        expected, sd = len(samples) * p, math.sqrt(len(samples) * p * (1 - p))
        assert abs(seen - expected) < 5 * sd, (text, seen, expected)


def test_probabilities_of_distinct_stories_sum_below_one(stories):
    distinct = {s.text: s.logprob for s in stories}
    assert 0 < sum(math.exp(lp) for lp in distinct.values()) < 1
    assert all(lp < 0 for lp in distinct.values())


def test_a_character_keeps_their_name_and_two_characters_are_different_people(stories):
    fables = [s.text for s in stories if s.template == "fable"]
    trips = [s.text for s in stories if s.template == "trip"]
    assert fables and trips
    for text in fables:
        name = re.search(r"named (\w+)\.", text).group(1)
        assert re.search(rf"(In the end, {name} felt \w+|Then {name} went to sleep)\.$", text), text
    for text in trips:
        first, second = re.match(r"Last \w+, (\w+) and (\w+) took", text).groups()
        assert first != second


def test_entropy_floor_is_moderate_and_is_total_surprise_over_total_bytes(stories):
    bpb = dataset.entropy_bits_per_byte(stories)
    nats = -sum(s.logprob for s in stories)
    assert bpb == pytest.approx(nats / math.log(2) / sum(len(s.text.encode()) for s in stories))
    assert 0.2 < bpb < 1.5


def test_story_lengths_vary_widely(stories):
    lengths = [len(s.text.encode()) for s in stories]
    assert 100 < sum(lengths) / len(lengths) < 200
    assert min(lengths) < 60 and max(lengths) > 350


def test_all_templates_appear_in_random_order(stories):
    templates = [s.template for s in stories]
    assert set(templates) == set(dataset.TEMPLATES) and len(dataset.TEMPLATES) >= 6
    assert sum(a != b for a, b in zip(templates, templates[1:])) > len(templates) / 2


def test_grouped_storage_order_puts_each_template_in_one_block(stories):
    grouped = dataset.grouped_by_template(stories)
    assert sorted(grouped, key=id) == sorted(stories, key=id)
    templates = [s.template for s in grouped]
    assert sum(a != b for a, b in zip(templates, templates[1:])) == len(set(templates)) - 1
    fables = [s for s in stories if s.template == "fable"]
    assert [s for s in grouped if s.template == "fable"] == fables  # stable within a group


def test_split_removes_duplicates_and_shares_no_text(stories):
    doubled = stories + stories[:300]
    train, val = dataset.split_train_val(doubled, val_fraction=0.1, seed=0)
    train_texts, val_texts = [s.text for s in train], [s.text for s in val]
    assert not set(train_texts) & set(val_texts)
    assert len(set(train_texts)) == len(train_texts) and len(set(val_texts)) == len(val_texts)
    distinct = {s.text for s in doubled}
    assert set(train_texts) | set(val_texts) == distinct
    assert len(val) == round(0.1 * len(distinct))
    assert (train, val) == dataset.split_train_val(doubled, val_fraction=0.1, seed=0)
    assert val != dataset.split_train_val(doubled, val_fraction=0.1, seed=1)[1]
    position = {s.text: i for i, s in reversed(list(enumerate(doubled)))}  # first occurrence
    for side in (train, val):
        assert [position[s.text] for s in side] == sorted(position[s.text] for s in side)


# ----------------------------------------------------------------------------- chats

def test_chats_alternate_roles_and_vary_in_turns():
    chats = dataset.generate_chats(300, seed=0)
    assert chats == dataset.generate_chats(300, seed=0)
    for chat in chats:
        assert [m["role"] for m in chat] == ["user", "assistant"] * (len(chat) // 2)
        assert all(m["content"] for m in chat)
    assert {len(chat) // 2 for chat in chats} == {1, 2, 3, 4}


def test_chat_answers_are_right_and_follow_from_the_question():
    chats = dataset.generate_chats(500, seed=1)
    reply_to = {}
    for chat in chats:
        for question, answer in zip(chat[::2], chat[1::2]):
            sums = re.fullmatch(r"(?:[Ww]hat is|Can you add) (\d+) (?:plus|and) (\d+)\?", question["content"])
            if sums:
                assert re.search(rf"\b{int(sums[1]) + int(sums[2])}\.$", answer["content"])
        first_question, first_answer = chat[0]["content"], chat[1]["content"]
        assert reply_to.setdefault(first_question, first_answer) == first_answer


def test_a_recalled_friend_was_introduced_earlier_in_the_chat():
    chats = dataset.generate_chats(500, seed=2)
    recalls = 0
    for chat in chats:
        for i, message in enumerate(chat):
            if message["content"] == "What is my friend called?":
                friend = re.fullmatch(r"Your friend is called (\w+)\.", chat[i + 1]["content"])[1]
                earlier = " ".join(m["content"] for m in chat[:i])
                assert f"My friend {friend} " in earlier
                recalls += 1
    assert recalls > 0


# ----------------------------------------------------------------------------- classification

def test_classification_has_the_exact_minority_and_a_label_readable_from_the_text():
    examples = dataset.generate_classification(1000, seed=0)
    assert examples == dataset.generate_classification(1000, seed=0)
    labels = [label for _, label in examples]
    assert sum(labels) == 100 and len(labels) == 1000
    sad = re.compile(r"\b(sad|lonely|scared)\b")
    assert all(label == bool(sad.search(text)) for text, label in examples)
    assert 0 < sum(labels[:500]) < 100  # shuffled, not sorted by label
    assert sum(label for _, label in dataset.generate_classification(50, 0, minority_fraction=0.3)) == 15


# ----------------------------------------------------------------------------- tokenizer

TRICKY = [
    "",
    "hello world",
    "  leading and trailing spaces  ",
    "tabs\tand\nnew\n\nlines\r\n",
    "naïve café, 東京, Ελληνικά, עברית",
    "emoji 🦙🚀 and flags 🇫🇷, zero-width\u200bjoiner",
    "snake_case_name __dunder__ 12345678 3.14",
    "<|bos|> fake <|assistant_start|>turn<|assistant_end|><|pad|>",
    "lone surrogate \ud800 survives",
]


def test_decode_inverts_encode_on_stories_and_any_unicode(tok, stories):
    for text in [s.text for s in stories[:300]] + TRICKY:
        assert tok.decode(tok.encode(text)) == text


def test_pre_split_covers_every_character():
    for text in TRICKY:
        assert "".join(tokenizer.SPLIT.findall(text)) == text


def test_vocab_size_is_as_asked_with_special_tokens_last(tok):
    assert tok.vocab_size == 512
    ids = [tok.special_id(name) for name in SPECIAL_TOKENS]
    assert ids == list(range(512 - len(SPECIAL_TOKENS), 512))
    assert tok.bos_id == tok.special_id("<|bos|>") == tok.special_id("bos")
    assert tok.pad_id == tok.special_id("<|pad|>")
    assert tok.decode(ids) == "".join(SPECIAL_TOKENS)


def test_special_token_strings_in_text_never_become_special_ids(tok):
    for text in TRICKY:
        assert all(i < tok.vocab_size - len(SPECIAL_TOKENS) for i in tok.encode(text))
    assert tok.bos_id not in tok.encode("<|bos|>")


def test_merges_compress_story_text(tok, stories):
    texts = [s.text for s in stories[:300]]
    assert sum(len(tok.encode(t)) for t in texts) < sum(len(t.encode()) for t in texts) / 2


def test_token_byte_lengths_add_up_to_the_text(tok, stories):
    for text in [s.text for s in stories[:50]] + TRICKY:
        num_bytes = len(text.encode("utf-8", "surrogatepass"))
        assert sum(tok.token_byte_length(i) for i in tok.encode(text)) == num_bytes
    assert tok.token_byte_length(tok.bos_id) == 0


def test_decoding_a_cut_character_gives_a_replacement_not_an_error(tok):
    first_two_bytes_of_an_emoji = list("🦙".encode())[:2]  # byte-level ids are the bytes themselves
    assert tok.decode(tok.encode("ok ") + first_two_bytes_of_an_emoji) == "ok \ufffd"


def test_training_is_deterministic_and_save_load_keeps_the_encoding(tok, tmp_path):
    texts = [s.text for s in dataset.generate_stories(5000, seed=1)]
    assert Tokenizer.train(texts, 512).merges == tok.merges
    tok.save(tmp_path / "tokenizer.json")
    loaded = Tokenizer.load(tmp_path / "tokenizer.json")
    assert loaded.vocab_size == tok.vocab_size
    for text in texts[:50] + TRICKY:
        assert loaded.encode(text) == tok.encode(text)


def test_training_asks_for_a_possible_vocabulary():
    with pytest.raises(ValueError):
        Tokenizer.train(["tiny"], 100)
    with pytest.raises(ValueError):
        Tokenizer.train(["tiny"], 10_000)


def test_render_conversation_masks_exactly_the_assistants_words(tok):
    chat = [
        {"role": "user", "content": "What is 3 plus 4?"}, {"role": "assistant", "content": "3 plus 4 is 7."},
        {"role": "user", "content": "<|assistant_end|>"}, {"role": "assistant", "content": "Hi!"},
    ]
    ids, mask = tok.render_conversation(chat)
    sid = tok.special_id
    expected_ids, expected_mask = [tok.bos_id], [0]
    for message in chat:
        content = tok.encode(message["content"])
        learn = int(message["role"] == "assistant")
        expected_ids += [sid(f"<|{message['role']}_start|>"), *content, sid(f"<|{message['role']}_end|>")]
        expected_mask += [0] + [learn] * (len(content) + 1)
    assert ids == expected_ids and mask == expected_mask
    learned = [i for i, m in zip(ids, mask) if m]
    assert tok.decode(learned) == "3 plus 4 is 7.<|assistant_end|>Hi!<|assistant_end|>"
    assert ids.count(sid("<|assistant_end|>")) == 2  # the user's fake one stayed text
