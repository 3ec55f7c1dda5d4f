"""Chinese text in matplotlib figures: pick an installed CJK font, or say how to install one.

matplotlib's default font, DejaVu Sans, has no Chinese glyphs: a Chinese title
or label comes out as empty boxes (and a warning per missing glyph).  The
Chinese edition of the notebooks calls :func:`use_cjk_font` in its first code
cell, which puts the first CJK font it finds on this machine in front of
matplotlib's sans-serif list; with none installed it prints, in the current
language, the package to install for this operating system.
"""

from __future__ import annotations

import sys
from typing import TextIO

from .i18n import N_, _

__all__ = ["CJK_FONTS", "INSTALL_HINTS", "find_cjk_font", "use_cjk_font"]

# In order of preference; the names are the family names matplotlib's font manager reports.
CJK_FONTS = (
    "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Noto Sans CJK JP",  # Debian/Ubuntu fonts-noto-cjk
    "Microsoft YaHei", "SimHei",  # Windows
    "PingFang SC", "Hiragino Sans GB", "Heiti SC", "STHeiti",  # macOS
    "WenQuanYi Micro Hei", "WenQuanYi Zen Hei",  # Linux: fonts-wqy-microhei, fonts-wqy-zenhei
)

INSTALL_HINTS = {
    "linux": N_("Debian/Ubuntu: sudo apt install fonts-noto-cjk; Fedora: sudo dnf install google-noto-sans-cjk-fonts"),
    "darwin": N_("macOS ships PingFang SC; if it is missing, install Noto Sans CJK SC"),
    "win32": N_("Windows ships Microsoft YaHei; if it is missing, add the Chinese (Simplified) language pack"),
}


def find_cjk_font() -> str | None:
    """The first of :data:`CJK_FONTS` that matplotlib knows on this machine, or None."""
    from matplotlib import font_manager

    installed = {entry.name for entry in font_manager.fontManager.ttflist}
    return next((name for name in CJK_FONTS if name in installed), None)


def use_cjk_font(out: TextIO | None = None) -> str | None:
    """Draw figures with an installed CJK font; return its name, or None after printing how to get one."""
    import matplotlib

    name = find_cjk_font()
    if name is None:
        hint = INSTALL_HINTS.get(sys.platform, INSTALL_HINTS["linux"])
        print(_("no Chinese font found for the figures (Chinese text would show as empty boxes): {hint}; "
                "then restart the kernel").format(hint=_(hint)), file=out or sys.stdout)
        return None
    fonts = [font for font in matplotlib.rcParams["font.sans-serif"] if font != name]
    matplotlib.rcParams["font.sans-serif"] = [name, *fonts]
    matplotlib.rcParams["font.family"] = "sans-serif"
    matplotlib.rcParams["axes.unicode_minus"] = False  # the CJK fonts lack U+2212, the minus sign
    return name
