"""index.html of an explanation: one self-contained page (PNG files embedded as data URIs),
one section per input with the prediction, the target, coloured tokens and the numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from practicum.evaluate.page import (
    card,
    esc,
    figure,
    fmt,
    page,
    paragraph,
    png_data_uri,
    section,
    table,
)

TOKEN_CSS = """
.tokens { font:13px/2.1 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.tokens span { padding:2px 3px; border-radius:3px; margin-right:2px; white-space:pre; }
"""


NOTES = {
    "attributions": "Attributions are integrated gradients of the explained output (a class's logit, "
                    "or the regression value), computed with Captum; they sum to f(input) - "
                    "f(baseline) up to the convergence delta. Red pushes towards the explained class, "
                    "blue away from it.",
    "attention": "Attention maps: one panel per head, rows are queries and columns keys. Rollout "
                 "averages the heads, adds the residual identity, renormalises the rows and "
                 "multiplies through the layers (Abnar & Zuidema, 2020).",
    "logit-lens": "Logit lens: each layer's residual stream read with the model's final norm and "
                  "LM head, as if the network ended there; the last layer is the real prediction.",
}


def token_spans(tokens: list[str], scores: list[float]) -> str:
    """Each token on a red (towards the target) or blue (against) background; the score on hover."""
    top = max((abs(s) for s in scores), default=0.0) or 1.0
    spans = []
    for tok, s in zip(tokens, scores, strict=True):
        alpha = min(abs(s) / top, 1.0) * 0.85
        rgb = "214,39,40" if s > 0 else "31,119,180"
        spans.append(f'<span style="background:rgba({rgb},{alpha:.3f})" title="{esc(f"{s:+.4g}")}">'
                     f"{esc(tok)}</span>")
    return f'<div class="tokens">{"".join(spans)}</div>'


def _prediction_cards(item: dict[str, Any]) -> str:
    pred = item.get("prediction")
    cards = [card("prediction", fmt(pred) if isinstance(pred, float) else str(pred), word=True)]
    if "confidence" in item:
        cards.append(card("probability", fmt(float(item["confidence"]))))
    if "target" in item:
        cards.append(card("explained class", str(item["target"]), word=True))
    attr = item.get("attributions")
    if attr is not None:
        cards.append(card("f(input) - f(baseline)", fmt(attr["f_input"] - attr["f_baseline"]),
                          note=f"sum of attributions {fmt(attr['sum'])}"))
        cards.append(card("convergence delta", fmt(attr["delta"]), note=f"{attr['steps']} steps"))
    return f"<div class='cards'>{''.join(cards)}</div>"


def _numbers_table(item: dict[str, Any]) -> str:
    attr = item.get("attributions")
    names = item.get("tokens") or item.get("features")
    if attr is None or names is None:
        return ""
    values = item.get("values") or [""] * len(names)
    rows = [[esc(n), esc(v), esc(f"{s:+.5g}")] for n, v, s in zip(names, values, attr["scores"], strict=True)]
    headers = ["token" if "tokens" in item else "feature", "value", "attribution"]
    return table(headers, rows, numeric=[False, False, True], scroll=len(rows) > 12, compact=True)


def _lens_table(item: dict[str, Any]) -> str:
    lens = item.get("logit_lens")
    if lens is None:
        return ""
    rows = []
    for name, layer in zip(lens["layers"], lens["top"], strict=True):
        cands = ", ".join(f"'{c['token']}' {c['probability']:.3f}" for c in layer[-1])
        rows.append([esc(name), esc(cands)])
    return "<h3>Next-token candidates at the last position, per layer</h3>" + table(
        ["layer", "top candidates (probability)"], list(reversed(rows)), compact=True)


def _figures(item: dict[str, Any], out: Path) -> str:
    shown = []
    for name in item.get("files", []):
        uri = png_data_uri(out / name)
        if uri:
            shown.append(figure(uri, name))
    return f"<div class='plots'>{''.join(shown)}</div>" if shown else ""


def item_section(item: dict[str, Any], out: Path) -> str:
    body = [_prediction_cards(item)]
    if item.get("summary"):
        body.append(paragraph(item["summary"]))
    attr, view = item.get("attributions"), item.get("attention")
    if attr is not None and "tokens" in item:
        body.append("<h3>Tokens as the model saw them</h3>" + token_spans(item["tokens"], attr["scores"]))
        body.append(paragraph(f"baseline: {attr['baseline']}"))
    elif view is not None:
        body.append(f"<h3>Attention rollout: how much each token reaches the {esc(view['pooling'])} "
                    "readout</h3>" + token_spans(view["tokens"], view["relevance"]))
    body.append(_lens_table(item))
    body.append(_figures(item, out))
    body.append(_numbers_table(item))
    return section(f"Input {item['index']}: {str(item['input'])[:120]}", "".join(body),
                   anchor=f"input-{item['index']}")


def write_page(result: Any, path: Path) -> Path:
    """Write index.html next to the PNG files it embeds."""
    out = path.parent
    intro = (f"<header><h1>Explanation: {esc(result.bundle.name)}</h1><div class='sub'>"
             f"{esc(result.bundle)} · {esc(result.kind.replace('_', ' '))} · views: "
             f"{esc(', '.join(result.views))} · numbers in explain.json</div></header>")
    notes = "".join(paragraph(NOTES[v]) for v in result.views)
    body = intro + notes + "".join(item_section(item, out) for item in result.items)
    html = page(f"explain {result.bundle.name}", body).replace("</style>", TOKEN_CSS + "</style>", 1)
    path.write_text(html, encoding="utf-8")
    return path
