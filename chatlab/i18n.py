"""The language chatlab speaks to a student: English, or Chinese (简体中文).

Every message a student meets while working (a checker's PASS/FAIL lines and
hints, the terminal client's help and notices, the command line's errors) is
written in English in the code, wrapped in ``_()``, and translated through
standard gettext catalogs: ``chatlab/locale/zh_CN/LC_MESSAGES/chatlab.po``
(the source a translator edits) compiled to ``chatlab.mo`` (what
:mod:`gettext` reads).  How the catalogs are extracted, updated and compiled:
``docs/TRANSLATING.md``.

Which language, in this order:

1. :func:`set_language` called from Python (a notebook cell), if it was;
2. the ``CHATLAB_LANG`` environment variable: ``zh``, ``zh_CN``, ``zh-CN``,
   ``zh_TW``... mean Chinese (the one Chinese catalog, in simplified
   characters), ``en`` English;
3. the operating system's language: ``LANGUAGE``, ``LC_ALL``, ``LC_MESSAGES``
   and ``LANG`` as gettext reads them, then :func:`locale.getlocale`, then on
   Windows the user's display language;
4. English.

The language is looked up at each message, not once at import, so setting
``CHATLAB_LANG`` (or calling :func:`set_language`) in a notebook after
``import chatlab`` takes effect at the next checker run.

Placeholders are named (``_("{nick} joined").format(nick=...)``), so that a
translation may put them in another order.
"""

from __future__ import annotations

import functools
import gettext
import locale
import os
import sys
from pathlib import Path

__all__ = ["DOMAIN", "LOCALE_DIR", "LANGUAGES", "language", "set_language", "translation", "_", "ngettext", "N_",
           "ARGPARSE_MESSAGES", "translate_argparse"]

DOMAIN = "chatlab"
LOCALE_DIR = Path(__file__).with_name("locale")
LANGUAGES = ("en", "zh_CN")  # English is the source language: it needs no catalog

_chosen: str | None = None  # set_language()'s choice, which beats the environment


def normalise(tag: str | None) -> str | None:
    """``"zh-CN"``, ``"zh_CN.UTF-8"``, ``"zh_TW"``, ``"Chinese (Simplified)_China.936"`` -> ``"zh_CN"``;
    ``"en_US"``, ``"C"``, ``"POSIX"`` -> ``"en"``; a language chatlab has no catalog for -> ``None``."""
    if not tag:
        return None
    tag = tag.strip().split(".")[0].split("@")[0].replace("-", "_").lower()
    if tag.startswith(("zh", "chinese")):
        return "zh_CN"  # one Chinese catalog; a Traditional-script reader still reads it
    if tag.startswith(("en", "english")) or tag in ("c", "posix"):
        return "en"
    return None


def _windows_ui_language() -> str | None:
    """The Windows display language as a locale name (``zh_CN``), or None elsewhere or on failure."""
    if sys.platform != "win32":
        return None
    try:
        import ctypes

        lang_id = ctypes.windll.kernel32.GetUserDefaultUILanguage()
    except (AttributeError, OSError):
        return None
    return locale.windows_locale.get(lang_id)


def _from_os() -> str | None:
    # gettext's own order: LANGUAGE may list several (zh_CN:en); the first we know wins
    for variable in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(variable)
        if value:
            for tag in value.split(":"):
                found = normalise(tag)
                if found:
                    return found
            if variable != "LANGUAGE":
                return None  # set to a language we do not have (fr_FR): English, as gettext would
    try:
        found = normalise(locale.getlocale()[0])
    except ValueError:
        found = None
    return found or normalise(_windows_ui_language())


def language() -> str:
    """``"zh_CN"`` or ``"en"``: the language messages are printed in right now."""
    if _chosen is not None:
        return _chosen
    from_env = os.environ.get("CHATLAB_LANG")
    if from_env:
        return normalise(from_env) or "en"
    return _from_os() or "en"


def set_language(tag: str | None) -> None:
    """Print messages in ``tag`` (``"zh"``, ``"en"``) from now on; ``None`` goes back to the environment.

    Raises ``ValueError`` for a language chatlab has no catalog for.
    """
    global _chosen
    if tag is None:
        _chosen = None
        return
    found = normalise(tag)
    if found is None:
        raise ValueError(f"chatlab speaks {', '.join(LANGUAGES)}; no catalog for {tag!r}")
    _chosen = found


@functools.lru_cache(maxsize=None)
def translation(lang: str) -> gettext.NullTranslations:
    """The catalog for ``lang``; English (and a missing catalog) is the identity."""
    if lang == "en":
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, localedir=str(LOCALE_DIR), languages=[lang], fallback=True)


def _(message: str) -> str:
    """``message`` in the current language (the English itself when there is no translation)."""
    return translation(language()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural form for ``n``, in the current language (Chinese has one form)."""
    return translation(language()).ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Mark ``message`` for translation without translating it now (a module-level table of names).

    ``_()`` is called on it later, when it is printed, in the language of that moment.
    """
    return message


# argparse's own words ("usage: ", "options", "error: ..."), which every chatlab command prints.
# argparse looks them up with gettext.gettext in the "messages" domain, for which no Chinese
# catalog exists anywhere; translate_argparse() sends those look-ups to chatlab's catalog, where
# these msgids (argparse's English, exactly as Python 3.10-3.13 write it) have their Chinese.
ARGPARSE_MESSAGES = (
    N_("usage: "),
    N_("positional arguments"),
    N_("options"),
    N_("show this help message and exit"),
    N_("show program's version number and exit"),
    N_("%(prog)s: error: %(message)s\n"),
    N_("argument %(argument_name)s: %(message)s"),
    N_("the following arguments are required: %s"),
    N_("one of the arguments %s is required"),
    N_("unrecognized arguments: %s"),
    N_("not allowed with argument %s"),
    N_("ignored explicit argument %r"),
    N_("expected one argument"),
    N_("expected at most one argument"),
    N_("expected at least one argument"),
    N_("expected %s argument"),
    N_("expected %s arguments"),
    N_("ambiguous option: %(option)s could match %(matches)s"),
    N_("invalid %(type)s value: %(value)r"),
    N_("invalid choice: %(value)r (choose from %(choices)s)"),
)


def _argparse_gettext(message: str) -> str:
    return _(message)


def _argparse_ngettext(singular: str, plural: str, n: int) -> str:
    message = singular if n == 1 else plural
    return _(message)


def translate_argparse() -> None:
    """Make argparse print its own words (``usage:``, ``options:``, ``error:``) in chatlab's language.

    It replaces the ``_`` and ``ngettext`` that the :mod:`argparse` module looks
    its messages up with, for the whole process, so only chatlab's command-line
    entry points call it (never the library's import); under English it changes
    nothing.  The language is looked up at each message, as for every ``_()``.
    """
    import argparse

    setattr(argparse, "_", _argparse_gettext)
    setattr(argparse, "ngettext", _argparse_ngettext)
