"""
A seeded generator of natural-looking text whose exact entropy is known. Notable features:
- text comes from a small probabilistic grammar: story templates made of fixed words and
  slots, each slot drawing from a word list with explicit Zipf-like probabilities
- one set of tables drives two interpreters: a sampler (generate_stories) and a parser
  (count_derivations). Every string has exactly one derivation, so a sample's logprob is the
  exact log-probability of its string and entropy_bits_per_byte is a floor that no model can
  beat on held-out text. It is about 0.3 bits per byte: like real English, most bytes are
  fixed words and things already said
- a slot filled once is repeated later ("a cow named Mia ... Mia said moo"), and two
  characters in one story are never the same person: long-range dependencies that only a
  model with context can use
- a geometric number of sentences makes documents vary in length (about 40 to 400 bytes)
- the natural storage order is grouped by template, so a loader that forgets to shuffle shows it
- chats and a 90/10 imbalanced classification set reuse the same world and vocabulary;
  an assistant's answer is a function of the conversation so far, so it can be graded exactly
"""

import bisect
import itertools
import math
import random
import re
from dataclasses import dataclass
from operator import itemgetter


@dataclass(frozen=True)
class Sample:
    text: str
    logprob: float  # natural log of the probability of exactly this string
    template: str  # which kind of story produced it


class Words:
    """Weighted choices (a slot's fillers, or option numbers) with explicit probabilities,
    sampled with one rng.random() each."""

    def __init__(self, weights, distinct=False):
        total = sum(weights.values())
        self.words = tuple(weights)
        self.prob = {w: p / total for w, p in weights.items()}
        self.logp = {w: math.log(p) for w, p in self.prob.items()}
        # divide the running sums by the total, so the last one is exactly 1.0 > rng.random()
        self.cumulative = tuple(c / total for c in itertools.accumulate(weights.values()))
        self.distinct = distinct  # two slots of one story never get the same filler

    def sample(self, rng):
        return self.words[bisect.bisect(self.cumulative, rng.random())]


def zipf(fillers, sep=None, distinct=False):
    """The fillers in `fillers` (split on `sep`, default whitespace), probability falling as 1/rank."""
    return Words({w: 1 / rank for rank, w in enumerate(fillers.split(sep), start=1)}, distinct)


# ---------------------------------------------------------------------------
# The world. Each slot is followed by fixed text starting with a space or punctuation, and the
# options of a choice differ within their first words, so a string never reads two ways: one
# derivation per string. No adjective or colour starts with a vowel ("a {adj}" is good English).

SOUNDS = dict(pair.split(":") for pair in (
    "dog:woof cat:meow cow:moo duck:quack frog:ribbit pig:oink sheep:baa hen:cluck lion:roar "
    "mouse:squeak goat:maa horse:neigh bee:buzz snake:hiss wolf:awoo crow:caw").split())
LEGS = {"bee": "6", "duck": "2", "hen": "2", "crow": "2", "snake": "no"}  # the rest have 4
SAD_FEELINGS = ("sad", "lonely", "scared")  # label 1 of the classification task

WORDS = {
    "name": zipf("Mia Leo Sam Lily Max Zoe Ben Ava Tom Ella Finn Ruby Noah Ivy Jack Nora Owen Lucy "
                 "Adam Rosa Eli Maya Hugo Iris Kai Luna Nico Sara Theo Vera Omar Jade Luke Anna",
                 distinct=True),
    "animal": zipf(" ".join(SOUNDS)),
    "adj": zipf("little big brave fluffy small clever tiny shy noisy gentle curious funny quiet young "
                "kind silly busy lazy grumpy hungry sneaky speedy wise playful"),
    "color": zipf("red blue green yellow purple pink brown black white golden"),
    "feeling": zipf("happy glad sleepy sad proud lonely excited calm scared tired"),
    "place": zipf("park river garden market beach forest school farm hill library lake pond village "
                  "castle zoo bakery meadow harbor bridge station museum cave island shop"),
    "time": zipf("morning day evening night weekend summer winter spring"),
    "went": zipf("went ran walked hurried hopped raced wandered skipped"),
    "prep": zipf("near behind beside by"),
    "thing": zipf("ball stone hat key feather map box coin kite book cup shell ring bell drum leaf spoon "
                  "sock shoe basket candle rope net"),
    "liked": zipf("liked loved wanted ate shared hid"),
    "food": zipf("cake soup apples bread rice cheese carrots pie berries fish honey corn nuts pears "
                 "cookies plums jam eggs pasta beans grapes lemons melons peas"),
    "objects": zipf("apples shells cookies stones eggs flowers books pencils"),
    "day": zipf("Monday Saturday Sunday Friday Tuesday Wednesday Thursday"),
    "city": zipf("Paris London Rome Tokyo Cairo Lima Oslo Delhi Berlin Madrid Sydney Dublin Vienna Prague "
                 "Lisbon Seoul Nairobi Quito"),
    "vehicle": zipf("bus train boat car bike plane ferry"),
    "sight": zipf("a big bridge|the sea|an old castle|many boats|a tall tower|a museum|the mountains|"
                  "a parade|a famous painting|some street music", sep="|"),
    "meal": zipf("breakfast lunch dinner"),
    "answer": zipf("Yes, I do.|No, not today.|I do not know.|Maybe later.|Of course!|Not really.|"
                   "I think so.|Let me see.|Yes!|Never.", sep="|"),
    "game": zipf("tag|cards|chess|ball|hide and seek|football|dominoes", sep="|"),
    "weather": zipf("sunny cloudy rainy windy foggy snowy stormy clear"),
    "advice": zipf("Have a nice week!|Stay safe out there.|Dress warmly.|Do not forget your umbrella.|"
                   "Enjoy the sun!", sep="|"),
    "number": zipf(" ".join(str(i) for i in range(1, 13))),
    "count": zipf(" ".join(str(i) for i in range(2, 13))),  # "1 apples" is not English
    "few": zipf("3 5 4 6 2 7 8 9"),
    "price": zipf(" ".join(str(i) for i in range(2, 31))),
    "temp": zipf("18 20 16 22 15 24 12 26 10 28 8 30 5 32"),
    "speed": zipf("10 15 5 20 25 30 40"),
    "hour": zipf("8 9 7 10 11 12 1 2 3 4 5 6"),
    "minute": zipf("00 30 15 45 05 10 20 40 50 25 35 55"),
}

# Slots whose text follows from earlier choices: probability 1, so they add nothing to logprob.
DERIVED = {
    "sound": lambda env: SOUNDS[env["animal"]],
    "legs": lambda env: LEGS.get(env["animal"], "4"),
    "sum": lambda env: str(int(env["a"]) + int(env["b"])),
    "product": lambda env: str(int(env["a"]) * int(env["b"])),
    "upto": lambda env: ", ".join(str(i) for i in range(1, int(env["n"]) + 1)),
}


# ---------------------------------------------------------------------------
# Grammar parts. Each can emit() a random expansion and list the parser's next steps() from a
# state: (position in the text, parts still to match, bindings so far).

@dataclass(frozen=True)
class Fixed:
    """Text with no choice in it: fixed words, a name said again, an animal's sound, a sum."""
    render: object  # bindings -> str

    def emit(self, rng, env, out):
        out.append(self.render(env))
        return 0.0

    def steps(self, text, pos, rest, env):
        said = self.render(env)
        if text.startswith(said, pos):
            yield pos + len(said), rest, env, 0.0


@dataclass(frozen=True)
class Pick:
    """Choose a filler for a slot and bind it to `var`, avoiding the fillers bound to `avoid`."""
    var: str
    words: Words
    avoid: tuple = ()

    def logprob(self, word, env):
        banned = {env[v] for v in self.avoid}  # excluded fillers: renormalise over the rest
        return self.words.logp[word] - math.log1p(-sum(self.words.prob[b] for b in banned))

    def emit(self, rng, env, out):
        banned = {env[v] for v in self.avoid}
        word = self.words.sample(rng)
        while word in banned:  # rejection sampling draws from the renormalised distribution
            word = self.words.sample(rng)
        env[self.var] = word
        out.append(word)
        return self.logprob(word, env) if self.avoid else self.words.logp[word]

    def steps(self, text, pos, rest, env):
        banned = {env[v] for v in self.avoid}
        for word in self.words.words:
            if word not in banned and text.startswith(word, pos):
                yield pos + len(word), rest, {**env, self.var: word}, self.logprob(word, env)


@dataclass(frozen=True)
class OneOf:
    """Exactly one of several options (each a spec, then a tuple of parts), chosen by weight."""
    options: tuple
    choice: Words  # over option indices

    def emit(self, rng, env, out):
        i = self.choice.sample(rng)
        return self.choice.logp[i] + _emit(self.options[i], rng, env, out)

    def steps(self, text, pos, rest, env):
        for i, option in enumerate(self.options):
            yield pos, option + rest, env, self.choice.logp[i]


def one_of(*weighted):
    return OneOf(tuple(spec for _, spec in weighted), Words({i: w for i, (w, _) in enumerate(weighted)}))


@dataclass(frozen=True)
class Repeat:
    """`body` once, then again with probability 1 - p_stop after each pass: a geometric count.
    Every body starts with fixed text, so each pass consumes input and the parser terminates."""
    body: tuple
    more: Words  # 0: stop, 1: go round again

    def emit(self, rng, env, out):
        logp = _emit(self.body, rng, env, out)
        while (again := self.more.sample(rng)):
            logp += self.more.logp[again] + _emit(self.body, rng, env, out)
        return logp + self.more.logp[again]

    def steps(self, text, pos, rest, env):
        # after each pass, a choice between nothing (stop) and this same Repeat
        stop_or_again = OneOf(((), (self,)), self.more)
        yield pos, self.body + (stop_or_again,) + rest, env, 0.0


def repeat(body, p_stop):
    return Repeat(body, Words({0: p_stop, 1: 1 - p_stop}))


def _emit(parts, rng, env, out):
    return sum(part.emit(rng, env, out) for part in parts)


# ---------------------------------------------------------------------------
# Templates are text with {slots}: {var} picks from WORDS[var] the first time and says the same
# filler again after that; {var:list} picks from WORDS[list]; a DERIVED name is computed.

_SLOT = re.compile(r"\{(\w+)(?::(\w+))?\}")


def _literal(words):
    return Fixed(lambda env: words)


def _compile_text(text, bound):
    parts, end = [], 0
    for slot in _SLOT.finditer(text):
        if slot.start() > end:
            parts.append(_literal(text[end:slot.start()]))
        var, list_name = slot.group(1), slot.group(2) or slot.group(1)
        if var in DERIVED:
            parts.append(Fixed(DERIVED[var]))
        elif var in bound:
            parts.append(Fixed(itemgetter(var)))
        else:
            words = WORDS[list_name]
            avoid = tuple(v for v, other in bound.items() if other == list_name) if words.distinct else ()
            parts.append(Pick(var, words, avoid))
            bound[var] = list_name
        end = slot.end()
    if end < len(text):
        parts.append(_literal(text[end:]))
    return parts


def _compile(spec, bound=None):
    """Turn a spec (text, one_of, Repeat, or a tuple of them) into parts.
    `bound` maps each var already picked to its word list; returns (parts, bound afterwards).
    After a one_of, only vars that every option binds stay bound; a Repeat body's picks stay inside it."""
    bound = dict(bound or {})
    parts = []
    for item in spec if isinstance(spec, tuple) else (spec,):
        if isinstance(item, str):
            parts += _compile_text(item, bound)
        elif isinstance(item, OneOf):
            compiled = [_compile(option, bound) for option in item.options]
            parts.append(OneOf(tuple(p for p, _ in compiled), item.choice))
            bound = {v: w for v, w in compiled[0][1].items() if all(v in b for _, b in compiled)}
        else:
            parts.append(Repeat(_compile(item.body, bound)[0], item.more))
    return tuple(parts), bound


QUESTION = one_of(
    (2, "Do you like {food}?"), (2, "Where is my {thing}?"), (1, "Can we go to the {place}?"),
    (1, "Is your {animal} {adj}?"), (1, "Do you want to play {game}?"), (1, "Are you {feeling}?"),
)

STORY_SPECS = {  # name: (weight, spec); each template starts with its own word
    "fable": (3, (
        "Once upon a time there was a {adj} {animal} named {name}.",
        repeat(one_of(
            (3, " Every {time}, {name} {went} to the {place}."),
            (3, " One {time}, {name} found a {color} {thing} {prep} the {place}."),
            (2, " The {animal} {liked} {food} and {food2:food}."),
            (2, ' {name} said "{sound}!" to a {adj2:adj} {other:animal}.'),
            (2, " {name} met a {adj2:adj} {other:animal} called {pal:name}."),
            (2, " {name} had {n:count} {color} {objects}."),
            (1, " {name} was {feeling}."),
        ), p_stop=0.35),
        one_of((3, " In the end, {name} felt {feeling}."), (1, " Then {name} went to sleep.")),
    )),
    "trip": (2, (
        "Last {day}, {name} and {friend:name} took the {vehicle} to {city}.",
        repeat(one_of(
            (3, " They saw {sight}."),
            (2, " It was {weather} and {temp} degrees."),
            (2, " {friend} bought {food} for {price} coins."),
            (2, " They met {pal:name} at the {place}."),
            (2, " At {hour}:{minute} they had {meal}."),
            (1, " {name} felt {feeling}."),
        ), p_stop=0.4),
        one_of((2, " Then they went home."), (1, " They came home on {day2:day}.")),
    )),
    "meeting": (2, (
        "At the {place}, {name} met {friend:name}.",
        repeat(one_of(
            (1, (' "', QUESTION, '" asked {name}. "{answer}" said {friend}.')),
            (1, (' "', QUESTION, '" asked {friend}. "{answer}" said {name}.')),
        ), p_stop=0.5),
        " Then they played {game} together.",
    )),
    "sums": (1.5, (
        "Today {name} did some sums.",
        repeat(one_of(
            (3, " {a:number} plus {b:number} is {sum}."),
            (1, " {a:number} times {b:number} is {product}."),
            (2, " {a:count} {objects} and {b:count} more {objects} make {sum} {objects}."),
        ), p_stop=0.4),
        " {name} felt {feeling}.",
    )),
    "weather": (1, (
        "Weather for {city}.",
        repeat(" {day}: {weather}, {temp} degrees, wind {speed} km/h.", p_stop=0.35),
        " {advice}",
    )),
    "lesson": (1, (
        "Did you know?",
        repeat(one_of((2, " A {animal} says {sound}."), (1, " A {animal} has {legs} legs.")), p_stop=0.3),
        " Now you know!",
    )),
    "letter": (2, (
        "Dear {friend:name},",
        repeat(one_of(
            (2, "\nToday I went to the {place} with my {animal}."),
            (2, "\nMy {animal} is {adj} and {adj2:adj}."),
            (1, "\nI have {n:count} {color} {objects} now."),
            (1, "\nI feel {feeling} today."),
            (1, "\nI ate {food} for {meal}."),
            (1, "\nIt is {weather} in {city}."),
        ), p_stop=0.35),
        "\nLove, {name}",
    )),
}
TEMPLATES = {name: _compile(spec)[0] for name, (_, spec) in STORY_SPECS.items()}
TEMPLATE_KINDS = Words({name: weight for name, (weight, _) in STORY_SPECS.items()})


def _sample_story(rng):
    name = TEMPLATE_KINDS.sample(rng)
    out = []
    logprob = TEMPLATE_KINDS.logp[name] + _emit(TEMPLATES[name], rng, {}, out)
    return Sample("".join(out), logprob, name)


def generate_stories(n, seed):
    """n independent samples from the grammar, in the order they were drawn."""
    rng = random.Random(seed)
    return [_sample_story(rng) for _ in range(n)]


def grouped_by_template(samples):
    """The samples grouped by template in table order, stable within a group: storage order."""
    rank = {name: i for i, name in enumerate(TEMPLATES)}
    return sorted(samples, key=lambda s: rank[s.template])


def split_train_val(samples, val_fraction, seed):
    """Drop repeated texts (keeping the first), then split at random; each side keeps input order."""
    first = {}
    for s in samples:
        first.setdefault(s.text, s)
    unique = list(first.values())
    order = list(range(len(unique)))
    random.Random(seed).shuffle(order)
    val_index = set(order[: round(len(unique) * val_fraction)])
    train = [s for i, s in enumerate(unique) if i not in val_index]
    val = [s for i, s in enumerate(unique) if i in val_index]
    return train, val


def entropy_bits_per_byte(samples):
    """Exact entropy of the source per UTF-8 byte, estimated on these samples."""
    nats = -sum(s.logprob for s in samples)
    return nats / math.log(2) / sum(len(s.text.encode("utf-8")) for s in samples)


def _derivations(text):
    """Logprob of every derivation of `text`: a depth-first search over parser states, without
    recursion, so long or garbled model samples are safe to parse."""
    found = []
    stack = [(0, parts, {}, TEMPLATE_KINDS.logp[name]) for name, parts in TEMPLATES.items()]
    while stack:
        pos, todo, env, logp = stack.pop()
        if not todo:
            if pos == len(text):
                found.append(logp)
            continue
        for pos2, todo2, env2, step_logp in todo[0].steps(text, pos, todo[1:], env):
            stack.append((pos2, todo2, env2, logp + step_logp))
    return found


def count_derivations(text):
    """How many ways the grammar can produce `text`: 1 for any story it generates, 0 if it cannot."""
    return len(_derivations(text))


def logprob_of(text):
    """Natural log of the probability the grammar gives `text` (-inf if it cannot produce it)."""
    logps = _derivations(text)
    return math.log(sum(math.exp(lp) for lp in logps)) if logps else -math.inf


# ---------------------------------------------------------------------------
# Chats: each turn kind pairs user phrasings with assistant replies. A reply has no free slots,
# so the answer follows from the question and earlier turns and can be graded by exact match.

CHAT_SPECS = {  # kind: (weight, vars an earlier turn must have bound, [(user, assistant), ...])
    "greet": (1, {}, [
        ("Hi!", "Hello! Ask me about animals or numbers."),
        ("Hello there.", "Hi! What would you like to know?"),
    ]),
    "add": (3, {}, [
        ("What is {a:number} plus {b:number}?", "{a} plus {b} is {sum}."),
        ("what is {a:number} plus {b:number}?", "{a} plus {b} is {sum}."),
        ("Can you add {a:number} and {b:number}?", "Yes: {a} and {b} make {sum}."),
    ]),
    "sound": (2, {}, [
        ("What does a {animal} say?", "A {animal} says {sound}."),
        ("What sound does a {animal} make?", "It says {sound}!"),
    ]),
    "legs": (2, {}, [("How many legs does a {animal} have?", "A {animal} has {legs} legs.")]),
    "count": (1, {}, [("Count to {n:few}.", "{upto}."), ("Can you count to {n:few}?", "Sure: {upto}.")]),
    "pet": (2, {}, [
        ("My friend {friend:name} has a {pet:animal}.", "How nice! {friend} must love the {pet}."),
        ("My friend {friend:name} got a {pet:animal}.", "A {pet}! What a lucky {pet}."),
    ]),
    "recall": (3, {"friend": "name", "pet": "animal"}, [
        ("What pet does my friend have?", "{friend} has a {pet}."),
        ("Who has the {pet}?", "Your friend {friend} has the {pet}."),
        ("What is my friend called?", "Your friend is called {friend}."),
    ]),
}


def _compile_turn(needs, user, assistant):
    user_parts, bound = _compile(user, needs)
    assistant_parts, _ = _compile(assistant, bound)
    assert not any(isinstance(p, Pick) for p in assistant_parts), f"free slot in a reply: {assistant}"
    return user_parts, assistant_parts


CHAT_TURNS = [(weight, needs.keys(), [_compile_turn(needs, user, assistant) for user, assistant in pairs])
              for weight, needs, pairs in CHAT_SPECS.values()]


def generate_chats(n, seed):
    """n conversations of 1 to 4 user/assistant turns; a turn that recalls a fact comes after it."""
    rng = random.Random(seed)
    chats = []
    for _ in range(n):
        env, messages = {}, []
        for _ in range(rng.choices((1, 2, 3, 4), weights=(4, 3, 2, 1))[0]):
            possible = [(weight, pairs) for weight, needs, pairs in CHAT_TURNS if needs <= env.keys()]
            pairs = rng.choices([p for _, p in possible], weights=[w for w, _ in possible])[0]
            for role, parts in zip(("user", "assistant"), rng.choice(pairs)):
                out = []
                _emit(parts, rng, env, out)
                messages.append({"role": role, "content": "".join(out)})
        chats.append(messages)
    return chats


# ---------------------------------------------------------------------------
# Classification: does the story mention a sad feeling? Rare by design, like most events of interest.

def mentions_sadness(text):
    return any(word in SAD_FEELINGS for word in re.findall(r"[a-z]+", text))


def generate_classification(n, seed, minority_fraction=0.1):
    """n (story, label) pairs in random order, exactly round(n * minority_fraction) with label 1
    (the story mentions a sad feeling): draw stories, keeping each until its label's quota is full."""
    rng = random.Random(seed)
    wanted = {1: round(n * minority_fraction), 0: n - round(n * minority_fraction)}
    examples = []
    while len(examples) < n:
        text = _sample_story(rng).text
        label = int(mentions_sadness(text))
        if wanted[label] > 0:
            wanted[label] -= 1
            examples.append((text, label))
    rng.shuffle(examples)
    return examples
