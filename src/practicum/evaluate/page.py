"""HTML building blocks for report.html: inline CSS, escaping, tables, cards, images.

Everything here returns strings. Every value that comes from data passes through `esc`
(html.escape), so a `<script>` in a prediction input renders as text.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

CSS = """
:root { --fg:#1d2330; --muted:#5f6b7a; --line:#e3e7ee; --bg:#f6f8fb; --card:#fff;
  --accent:#2f6fde; --bad:#fdecec; --bad-line:#f3b9b9; --good:#1a7f4b; --warn:#fff7e0; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg);
  font:14px/1.5 -apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width:1120px; margin:0 auto; padding:28px 24px 48px; }
header h1 { margin:0; font-size:26px; font-weight:650; letter-spacing:-0.01em; }
header .sub { color:var(--muted); margin-top:4px; }
h2 { font-size:17px; margin:0 0 12px; font-weight:620; }
h3 { font-size:14px; margin:18px 0 8px; font-weight:620; }
code { font:12.5px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
section { background:var(--card); border:1px solid var(--line); border-radius:10px;
  padding:18px 20px; margin-top:18px; }
.cards { display:grid; grid-template-columns:repeat(auto-fit, minmax(140px, 1fr)); gap:12px;
  margin-top:18px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:12px 14px; }
.card .label { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:0.04em; }
.card .value { font-size:22px; font-weight:640; margin-top:2px; font-variant-numeric:tabular-nums;
  overflow-wrap:break-word; }
.card .value.word { font-size:17px; padding-top:4px; }
.card .note { color:var(--muted); font-size:12px; margin-top:2px; }
.notice { background:var(--warn); border:1px solid #f0dca0; border-radius:10px; padding:10px 14px;
  margin-top:18px; }
.notice ul { margin:4px 0 0; padding-left:20px; }
.muted { color:var(--muted); }
.plots { display:flex; flex-wrap:wrap; gap:16px; align-items:flex-start; }
.plots figure { margin:0; flex:1 1 420px; }
.plots img { max-width:100%; height:auto; border:1px solid var(--line); border-radius:6px; }
.plots figcaption { color:var(--muted); font-size:12px; margin-top:4px; }
table { border-collapse:collapse; width:100%; font-variant-numeric:tabular-nums; }
table.compact { width:auto; min-width:440px; }
tr.absent td { color:var(--muted); }
th, td { text-align:left; padding:6px 10px; border-bottom:1px solid var(--line); vertical-align:top; }
th { font-size:12px; color:var(--muted); font-weight:600; text-transform:uppercase;
  letter-spacing:0.03em; background:#fafbfd; position:sticky; top:0; }
td.num, th.num { text-align:right; }
tr.mistake td { background:var(--bad); }
tr.mistake td:first-child { box-shadow:inset 3px 0 0 var(--bad-line); }
.text { max-width:460px; overflow-wrap:anywhere; white-space:pre-wrap; }
.scroll { max-height:520px; overflow:auto; border:1px solid var(--line); border-radius:6px; }
.scroll table th, .scroll table td { border-bottom-color:var(--line); }
.bar { display:inline-block; height:8px; border-radius:4px; background:var(--accent);
  vertical-align:middle; margin-right:6px; }
.bar.low { background:#d9534f; }
details { margin-top:4px; }
summary { cursor:pointer; font-weight:600; }
pre { background:#0f1623; color:#e6edf3; padding:14px 16px; border-radius:8px; overflow:auto;
  font:12.5px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
footer { color:var(--muted); font-size:12px; margin-top:24px; text-align:center; }
@media print { body { background:#fff; } section, .card { break-inside:avoid; } .scroll { max-height:none; } }
"""


def esc(value: Any) -> str:
    """HTML-escape any value's string form (quotes too, so it is safe in attributes)."""
    return html.escape(str(value), quote=True)


def fmt(value: Any) -> str:
    """A number for people: ints with separators, floats to about 5 significant digits."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.3g}"
        # 4 decimals below 1 (scores), fewer as values grow: 0.9167, 12.460, 460.80, 4,675.0
        digits = 0 if value == 0 else math.floor(math.log10(abs(value)))
        return f"{value:,.{min(4, max(0, 4 - digits))}f}"
    return "—" if value is None else str(value)


def num(value: Any) -> str:
    """`fmt` as table-cell HTML: escaped, since a value read from a file may be any string."""
    return esc(fmt(value))


def fmt_count(n: Any) -> str:
    """1234567 -> 1.23M (parameter counts)."""
    if not isinstance(n, (int, float)) or isinstance(n, bool):
        return "—"
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:g}"


def fmt_duration(seconds: Any) -> str:
    """83.2 -> 1m 23s."""
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not math.isfinite(seconds):
        return "—"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m {secs}s" if hours else f"{minutes}m {secs}s"


def card(label: str, value: str, note: str = "", title: str = "", word: bool = False) -> str:
    """A headline number (or, with word=True, a short word such as a device name)."""
    tip = f' title="{esc(title)}"' if title else ""
    note_html = f'<div class="note">{esc(note)}</div>' if note else ""
    cls = "value word" if word else "value"
    return (f'<div class="card"{tip}><div class="label">{esc(label)}</div>'
            f'<div class="{cls}">{esc(value)}</div>{note_html}</div>')


def section(title: str, body: str, anchor: str = "") -> str:
    ident = f' id="{esc(anchor)}"' if anchor else ""
    return f"<section{ident}><h2>{esc(title)}</h2>{body}</section>"


def paragraph(text: str, cls: str = "muted") -> str:
    return f'<p class="{cls}">{esc(text)}</p>'


def png_data_uri(path: Path) -> str | None:
    """The file as a base64 data URI, or None when it is not a readable PNG."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    if not data.startswith(PNG_SIGNATURE):
        return None
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def png_css_width(uri: str, dpi: int = 120) -> int | None:
    """Width in CSS pixels (96 per inch) of a PNG saved at `dpi`, read from its IHDR header."""
    head = base64.b64decode(uri.split(",", 1)[1][:44])  # signature + IHDR: the first 24 bytes
    if len(head) < 24:
        return None
    return round(int.from_bytes(head[16:20], "big") * 96 / dpi)


def figure(uri: str, caption: str, max_width: int | None = None) -> str:
    style = f' style="max-width:{int(max_width)}px"' if max_width else ""
    return (f'<figure{style}><img src="{uri}" alt="{esc(caption)}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    numeric: Sequence[bool] | None = None,
    row_classes: Iterable[str] | None = None,
    scroll: bool = False,
    compact: bool = False,
) -> str:
    """A table of PRE-ESCAPED cell HTML (callers escape with `esc`/`fmt`)."""
    numeric = list(numeric or [False] * len(headers))
    head = "".join(
        f'<th class="num">{esc(h)}</th>' if num else f"<th>{esc(h)}</th>"
        for h, num in zip(headers, numeric, strict=True)
    )
    classes = iter(row_classes) if row_classes is not None else None
    body = []
    for row in rows:
        cls = next(classes, "") if classes is not None else ""
        attr = f' class="{esc(cls)}"' if cls else ""
        cells = "".join(
            f'<td class="num">{cell}</td>' if num else f"<td>{cell}</td>"
            for cell, num in zip(row, numeric, strict=True)
        )
        body.append(f"<tr{attr}>{cells}</tr>")
    opening = '<table class="compact">' if compact else "<table>"
    html_table = f"{opening}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return f'<div class="scroll">{html_table}</div>' if scroll else html_table


def page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )
