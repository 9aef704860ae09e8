"""Text cut down for a line of a table or a hint: the first sentence of a paragraph."""


def first_sentence(text):
    """The first sentence of `text`, its whitespace folded, ending in one full stop ('' for none)."""
    text = " ".join(text.split())
    return text.split(". ")[0].rstrip(".") + "." if text else ""
