"""Compiles that take a while show a tqdm bar on stderr; quick ones and OUTLINES_CORE_PROGRESS=0 do not.

The bars are those of the Python determinization and refinement (the fallback without a C compiler): the C
kernels build the largest DFA the state bound allows in under a second, with no bar."""

from outlines_core import config
from outlines_core.regex import compile_dfa

LONG_RUN = r"[a-z]{0,3000}"  # thousands of states and minimization rounds


def test_a_compile_longer_than_the_delay_shows_a_bar(capsys, monkeypatch):
    monkeypatch.setattr(config, "PROGRESS_DELAY_SECONDS", 0.0)
    monkeypatch.setattr(config, "NATIVE_DFA", False)
    compile_dfa.__wrapped__(LONG_RUN)
    err = capsys.readouterr().err
    assert "regex -> DFA" in err and "states" in err
    assert "minimizing DFA" in err


def test_a_quick_compile_prints_nothing(capsys):
    compile_dfa.__wrapped__(r"[0-9]{1,3}")
    assert capsys.readouterr().err == ""


def test_progress_can_be_switched_off(capsys, monkeypatch):
    monkeypatch.setattr(config, "PROGRESS_DELAY_SECONDS", 0.0)
    monkeypatch.setattr(config, "NATIVE_DFA", False)
    monkeypatch.setenv("OUTLINES_CORE_PROGRESS", "0")
    compile_dfa.__wrapped__(LONG_RUN)
    assert capsys.readouterr().err == ""
