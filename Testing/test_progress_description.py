"""The terminal progress bar's description (`imagio.progress.short_description`): a long message
is cut at a word boundary and says so with an ellipsis (trial 71: the demo's bar read "generating
the digital phantom at 1.5 mm (or reading it from", cut mid-phrase with nothing to say so)."""
from imagio.progress import short_description


def test_long_messages_are_cut_at_a_word_with_an_ellipsis():
    msg = "generating the digital phantom at 1.5 mm (or reading it from the user's cache)"
    d = short_description(msg)
    assert len(d) <= 60 and d.endswith("\u2026"), d
    body = d[:-1]
    assert msg.startswith(body) and msg[len(body)] in " (", (d, msg)   # ends where a word ended
    assert not body.endswith((" ", "(")), d


def test_short_messages_and_unbroken_words_are_kept_or_cut_within_the_width():
    assert short_description("planning: scoring 24788 paths") == "planning: scoring 24788 paths"
    assert short_description("x" * 60) == "x" * 60
    d = short_description("y" * 100)
    assert len(d) == 60 and d == "y" * 59 + "\u2026", d


def test_a_cut_does_not_leave_a_bracket_open():
    """Trial 72 D5: "generating the digital phantom at 1.5 mm (or reading it…" left its bracket
    open: the cut goes before the unclosed bracket; a closed one is kept."""
    d = short_description("generating the digital phantom at 1.5 mm (or reading it from the user's cache)")
    assert d == "generating the digital phantom at 1.5 mm\u2026", d
    d = short_description("planning: distance map (3 mm) of 3 hard structure(s) with a 3 mm margin and more words")
    assert d.count("(") == d.count(")") and "(3 mm)" in d and len(d) <= 60, d
    d = short_description("[" + "z " * 40)   # nothing before the bracket: cut as before
    assert len(d) <= 60 and d.endswith("\u2026"), d
