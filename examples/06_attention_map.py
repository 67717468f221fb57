"""Attention maps: where each token of a sentence looks.

Loads the pretrained all-MiniLM-L6-v2 encoder (6 layers x 12 heads, shipped in an installed
package), keeps its attention weights for one sentence and prints them as text: which kind of
pattern every head follows over many sentences (previous token, next token, [CLS]/[SEP]), one
head's query-by-key heat map, and attention rollout (how much each word reaches the sentence
embedding). The chosen layer's heads and the rollout are saved as PNGs under --out.

Try --layer 4 --head 2: there "it" looks at "animal", and "cross" at "street".
"""

import torch

from practicum.data.builtin import load_builtin
from practicum.explain.attention import attention_maps, attention_rollout
from practicum.explain.figures import attention_grid, rollout_plot
from practicum.learn import lesson_parser
from practicum.pretrained import load_backbone

SHADES = " .:-=+*#%@"  # weight 0 .. 1, one character per tenth
PATTERNS = ("the previous token", "the next token", "itself", "[CLS] or [SEP]")


def head_patterns(maps: list[torch.Tensor]) -> torch.Tensor:
    """(layers, heads, 4): the mean attention weight a query puts on the previous token, the
    next token, itself and the two special tokens, in the order of PATTERNS."""
    out = []
    for m in maps:  # (nh, T, T): row = query, column = key, each row sums to 1
        diag = [torch.diagonal(m, offset, dim1=1, dim2=2).mean(-1) for offset in (-1, 1, 0)]
        special = m[:, :, [0, -1]].sum(-1).mean(-1)  # (nh,)
        out.append(torch.stack([*diag, special], dim=-1))  # (nh, 4)
    return torch.stack(out)


def main() -> None:
    parser = lesson_parser(__doc__)
    parser.add_argument("--text", help="the sentence to show",
                        default="The animal didn't cross the street because it was too tired.")
    parser.add_argument("--layer", type=int, help="layer to show, 1-6 (default: the clearest's)")
    parser.add_argument("--head", type=int, help="head to show, 1-12 (default: the clearest)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    backbone = load_backbone("all-MiniLM-L6-v2")  # our TransformerLM with the MiniLM weights
    tokenizer, model = backbone.tokenizer, backbone.model

    def attention_of(text: str) -> tuple[list[str], list[torch.Tensor]]:
        ids = tokenizer.encode(text, add_special=True)  # [CLS] word pieces [SEP]
        # attention_maps sets keep_attention: the model runs its written-out softmax(QK^T / sqrt(d))
        # instead of the fused kernel, and keeps each layer's weights.
        maps = attention_maps(model, torch.tensor([ids]))  # one (heads, T, T) per layer
        return [tokenizer.inner.id_to_token(i) for i in ids], maps

    # 1. Heads specialise. Average each head's patterns over sentences of the ChatterBot corpus.
    sentences = list(load_builtin("chatterbot").train.frame["text"][: 20 if args.fast else 200])
    scores = torch.stack([head_patterns(attention_of(s)[1]) for s in sentences]).mean(0)
    # scores: (layers, heads, 4)
    print(f"share of each head's attention on [CLS] or [SEP], in %, over {len(sentences)} "
          "sentences\n(heads park their weight there when they have nothing to do):")
    print("          head " + " ".join(f"{h + 1:>3}" for h in range(scores.size(1))))
    for layer in range(scores.size(0)):
        shares = scores[layer, :, 3].tolist()
        print(f"  layer {layer + 1}      " + " ".join(f"{100 * w:3.0f}" for w in shares))
    print("heads that follow a position pattern (>= 0.4 of their weight):")
    for k, name in enumerate(PATTERNS[:3]):
        found = [f"layer {i + 1} head {h + 1} ({scores[i, h, k]:.2f})"
                 for i, h in (scores[..., k] >= 0.4).nonzero().tolist()]
        print(f"  {name:>18}: {', '.join(found) or 'none'}")

    # 2. One head on our sentence: the clearest non-special pattern, unless --layer/--head say.
    tokens, maps = attention_of(args.text)
    clear = scores[..., :3].amax(-1)  # (L, nh): previous / next / self only
    layer, head = divmod(int(clear.argmax()), clear.size(1))
    layer = args.layer - 1 if args.layer else layer
    head = args.head - 1 if args.head else head
    weights = maps[layer][head]  # (T, T)
    print(f"\nlayer {layer + 1}, head {head + 1} on {args.text!r} (row: query, column: key):")
    print(" " * 15 + "".join(f"{k % 10:>2}" for k in range(len(tokens))))
    for q, token in enumerate(tokens):
        cells = "".join(2 * SHADES[min(int(w * 10), 9)] for w in weights[q].tolist())
        looks_at = tokens[int(weights[q].argmax())]
        print(f"  {q:>2} {token[:10]:>10} {cells}  -> {looks_at}")

    # 3. Rollout: follow attention (plus the residual path) through all 6 layers. MiniLM's
    # sentence embedding is the mean over tokens, so average the rollout's rows.
    rollout = attention_rollout(maps)  # (T, T), rows sum to 1
    relevance = rollout.mean(0)  # (T,)
    words = relevance[1:-1] / relevance[1:-1].sum()  # the share of each word, specials left out
    print(f"\nrollout: [CLS] and [SEP] take {relevance[0] + relevance[-1]:.2f} of the sentence "
          "embedding; the words share the rest:")
    for token, r in zip(tokens[1:-1], words.tolist(), strict=True):
        print(f"  {token[:12]:>12} {r:5.3f} {'#' * round(r * 300)}")

    grid = attention_grid(maps[layer].numpy(), tokens, f"layer {layer + 1}",
                          args.out / f"attention_layer{layer + 1}.png")
    view = {"tokens": tokens, "rollout": rollout.tolist(), "relevance": relevance.tolist(),
            "layers": len(maps), "pooling": "mean"}
    roll = rollout_plot(view, args.out / "rollout.png")
    print(f"\nsaved {grid} and {roll}")
    name = PATTERNS[int(scores[layer, head, :3].argmax())]
    print(f"result: layer {layer + 1} head {head + 1} puts {clear[layer, head]:.2f} of its "
          f"attention on {name} (mean over {len(sentences)} sentences)")


if __name__ == "__main__":
    main()
