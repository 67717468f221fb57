"""The `practicum` command: argument parsing and printing over practicum.api, no logic.

Bad input prints one `error:` line and exits 2; `--debug` prints the traceback before that
line. The exit code never depends on `--debug`.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import shutil
import sys
import traceback
from pathlib import Path
from typing import Any

from practicum.errors import TrainingDiverged, UserError

log = logging.getLogger("practicum")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    _setup_logging(debug)
    parser = _parser()
    argv, pulled = _pull_overrides(argv)
    args, extra = parser.parse_known_args(argv)
    extra = pulled + extra
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    if extra and not getattr(args, "takes_overrides", False):
        parser.error(f"unrecognised arguments: {' '.join(extra)}")
    try:
        return args.func(args, extra) or 0
    except (UserError, TrainingDiverged) as exc:
        _traceback(debug)
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        _traceback(debug)
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as SIGPIPE would
        _silence_stdout()
        return 141
    except Exception as exc:  # an unexpected failure still gets one readable line
        _traceback(debug)
        hint = "" if debug else " (run with --debug for the traceback)"
        print(f"error: internal error: {type(exc).__name__}: {exc}{hint}", file=sys.stderr)
        return 1


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass


def _traceback(debug: bool) -> None:
    """With --debug, the traceback of the exception being handled, on stderr."""
    if debug:
        traceback.print_exc(file=sys.stderr)


# ---------------------------------------------------------------- commands


def cmd_quickstart(args: argparse.Namespace, extra: list[str]) -> int:
    from practicum import api
    from practicum.config import parse_overrides

    result = api.quickstart(args.out_dir, parse_overrides(extra))
    test = result.metrics.get("test", {})
    print(f"\ntest accuracy: {test.get('accuracy', float('nan')):.4f} "
          f"(macro F1 {test.get('f1_macro', float('nan')):.4f}) on {result.summary['device']} "
          f"in {result.summary['train_time_s']:.1f}s of training")
    print(f"run folder:   {result.run_dir}")
    print(f"report:       {result.report}")
    print(f"bundle:       {result.bundle}")
    me = _invoked_as()
    print("\nnext:")
    print(f"  {me} predict {result.bundle} --input builtin:digits --split test | head")
    print(f"  {me} evaluate {result.bundle} --data builtin:digits --split test")
    print(f"  {me} train mlp_tabular          # an MLP on the penguins CSV")
    print(f"  {me} config show quickstart     # every field; override any with --section.field value")
    return 0


def cmd_train(args: argparse.Namespace, extra: list[str]) -> int:
    from practicum import api
    from practicum.config import Override, parse_overrides

    if _launches(args):
        return _torchrun(args, ["train", args.recipe, *extra]
                         + (["--shots", str(args.shots)] if args.shots is not None else []))
    overrides = parse_overrides(extra) + _strategy(args)
    if args.shots is not None:
        overrides.append(Override(f"data.shots={args.shots}", "--shots"))
    resume: Any = args.resume if args.resume not in (None, "") else False
    if args.resume == "":
        resume = True
    result = api.train(args.recipe, overrides, resume=resume)
    if "rank" in result.summary:  # a worker of a distributed run: rank 0 prints
        return 0
    if result.summary.get("task") in ("causal_lm", "masked_lm"):
        return _print_lm_result(result)
    if result.summary.get("task") == "sft":
        before, after = result.summary.get("val_before", {}), result.summary.get("val", {})
        if "loss" in after:
            start = f"{before['loss']:.4f} -> " if "loss" in before else ""
            print(f"val response loss: {start}{after['loss']:.4f}")
        print(f"run folder: {result.run_dir}\nreport:     {result.report}\nbundle:     {result.bundle}")
        print(f"\nnext:\n  {_invoked_as()} generate {result.bundle} --prompt \"...\"")
        return 0
    headline = result.metrics.get("test") or result.metrics.get("val") or {}
    shown = {k: round(v, 4) for k, v in headline.items() if isinstance(v, float)}
    keys = ["accuracy", "f1_macro", "roc_auc"] if "accuracy" in shown else ["mae", "rmse", "r2"]
    which = "test" if result.metrics.get("test") else "val"
    print(f"{which}: " + "  ".join(f"{k} {shown[k]}" for k in keys if k in shown))
    print(f"run folder: {result.run_dir}\nreport:     {result.report}\nbundle:     {result.bundle}")
    return 0


def cmd_pretrain(args: argparse.Namespace, extra: list[str]) -> int:
    from practicum import api
    from practicum.config import Override, parse_overrides

    if _launches(args):
        return _torchrun(args, ["pretrain", args.recipe, *extra]
                         + (["--data", args.data] if args.data else []))
    overrides = parse_overrides(extra) + _strategy(args)
    if args.data:
        overrides.insert(0, Override(f"data.path={args.data}", "--data"))
    resume: Any = args.resume if args.resume not in (None, "") else False
    if args.resume == "":
        resume = True
    result = api.pretrain(args.recipe, overrides, resume=resume)
    if "rank" in result.summary:  # a worker of a distributed run: rank 0 prints
        return 0
    return _print_lm_result(result)


def _launches(args: argparse.Namespace) -> bool:
    """--nproc/--nnodes given: this process only starts torchrun."""
    return args.nproc is not None or args.nnodes > 1


def _strategy(args: argparse.Namespace) -> list[str]:
    """--strategy/--device/--precision/--compile as train.* overrides (they win over --train.*)."""
    from practicum.config import Override

    flags = {"strategy": args.strategy, "device": getattr(args, "device", None),
             "precision": getattr(args, "precision", None),
             "compile": "true" if getattr(args, "compile", False) else None}
    return [Override(f"train.{name}={value}", f"--{name}") for name, value in flags.items() if value]


def _torchrun(args: argparse.Namespace, cli_args: list[str]) -> int:
    """Re-run this command under torchrun (same arguments, minus the launch flags)."""
    from practicum.train.distributed import launch, torchrun_command

    cli_args += [f"--resume={args.resume}"] if args.resume is not None else []
    cli_args += ["--strategy", args.strategy] if args.strategy else []
    cli_args += ["--device", args.device] if getattr(args, "device", None) else []
    cli_args += ["--precision", args.precision] if getattr(args, "precision", None) else []
    cli_args += ["--compile"] if getattr(args, "compile", False) else []
    return launch(torchrun_command(cli_args, args.nproc or 1, args.nnodes, args.node_rank,
                                   args.rdzv_endpoint, args.max_restarts))


def _add_launch_flags(p: argparse.ArgumentParser) -> None:
    """Distributed training flags of train/pretrain (see README "Scaling up")."""
    p.add_argument("--nproc", type=int, default=None, metavar="N",
                   help="processes per node: re-launch through torchrun (DDP; global batch kept)")
    p.add_argument("--nnodes", type=int, default=1, metavar="M", help="machines in the run (with --rdzv-endpoint)")
    p.add_argument("--node-rank", type=int, default=0, metavar="R", help="this machine's index, 0..M-1")
    p.add_argument("--rdzv-endpoint", default=None, metavar="HOST:PORT", help="rendezvous on node 0, e.g. 10.0.0.1:29400")
    p.add_argument("--max-restarts", type=int, default=0, metavar="K",
                   help="torchrun elastic restarts; a restarted group resumes from the last checkpoint")
    p.add_argument("--strategy", choices=["ddp", "fsdp"], default=None, help="train.strategy: ddp (default) or fsdp")
    p.add_argument("--device", default=None, help="train.device: auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default=None,
                   help="train.precision: fp32, bf16 autocast, or fp16 with a gradient scaler (CUDA)")
    p.add_argument("--compile", action="store_true", help="train.compile: torch.compile the model for training")


def cmd_resume_check(args: argparse.Namespace, extra: list[str]) -> int:
    from practicum import api
    from practicum.config import parse_overrides
    from practicum.resume_check import format_report

    result = api.resume_check(args.recipe, parse_overrides(extra), steps=args.steps, keep=args.keep,
                              device=args.device, nproc=args.nproc)
    print(format_report(result))
    if args.keep:
        print(f"run folders: {result.runs['full']} (uninterrupted), {result.runs['resumed']} (killed, resumed)")
    if result.ok:
        print("resume check passed: the killed-and-resumed run ended bit for bit where the uninterrupted one did")
        return 0
    print("resume check FAILED: " + "; ".join(f"{c.what} differs ({c.detail})" for c in result.failures()),
          file=sys.stderr)
    return 1


def cmd_ladder(args: argparse.Namespace, extra: list[str]) -> int:
    from practicum import api
    from practicum.config import Override, parse_overrides
    from practicum.ladder_page import ladder_markdown

    overrides = parse_overrides(extra)
    if args.rungs:
        overrides.append(Override(f"ladder.rungs=[{args.rungs}]", "--rungs"))
    for flag in ("shots", "seeds"):
        if getattr(args, flag) is not None:
            overrides.append(Override(f"ladder.{flag}={getattr(args, flag)}", f"--{flag}"))
    result = api.ladder(args.recipe, overrides, args.out)
    print(ladder_markdown(result))
    print(f"ladder page: {Path(result.out_dir) / 'ladder.html'}")
    return 0


def _print_lm_result(result: Any) -> int:
    val = result.metrics.get("val") or {}
    shown = [f"{k} {val[k]:.4f}" for k in ("loss", "perplexity", "bpc", "bits_per_byte",
                                           "mlm_accuracy", "nsp_accuracy") if k in val]
    print(f"val: {'  '.join(shown)}  ({result.summary['steps']} steps, "
          f"{result.summary['train_time_s']:.0f}s of training)")
    for i, text in enumerate(result.summary.get("samples", [])[:2]):
        print(f"\n--- sample {i + 1} ---\n{text.strip()}")
    print(f"\nrun folder: {result.run_dir}\nreport:     {result.report}\nbundle:     {result.bundle}")
    me = _invoked_as()
    if result.summary.get("task") == "causal_lm":
        print(f"\nnext:\n  {me} generate {result.bundle} --prompt \"The \"")
    else:
        print(f"\nnext:\n  {me} fill-mask {result.bundle} --text \"The [MASK] is\"")
    return 0


def cmd_generate(args: argparse.Namespace, extra: list[str]) -> int:
    from practicum import api
    from practicum.generate import GenerationConfig, generate, stream

    bundle = api.load(args.bundle, device=args.device)
    bundle.require_language_model("generate", causal=True)
    gen = GenerationConfig(
        max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
        top_p=args.top_p, repetition_penalty=args.repetition_penalty, stop=args.stop or [],
        seed=args.seed, use_cache=not args.no_cache,
    )
    prompts = [p.replace("\\n", "\n") for p in args.prompt]
    shown = prompts
    if args.chat:  # each prompt is a user message in the model's chat template; only replies print
        from practicum.data.sft import render_chat

        template = bundle.info.get("chat_template")
        if not template:
            raise UserError(f"{bundle.path} has no chat template; drop --chat and write the prompt in full")
        prompts = [render_chat(template, [{"role": "user", "content": p}], True, bundle.tokenizer) for p in prompts]
        shown = [""] * len(prompts)
    if len(prompts) == 1 and not args.no_stream:
        pieces = stream(bundle.model, bundle.tokenizer, prompts[0], gen)  # a bad prompt stops here
        sys.stdout.write(shown[0])
        for piece in pieces:
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        return 0
    for prompt, head, completion in zip(prompts, shown, generate(bundle.model, bundle.tokenizer, prompts, gen),
                                        strict=True):
        if args.format == "json":
            print(json.dumps({"prompt": prompt, "text": completion.text,
                              "finish_reason": completion.finish_reason}))
        else:
            print(f"{head}{completion.text}\n")
    return 0


def cmd_fill_mask(args: argparse.Namespace, extra: list[str]) -> int:
    from practicum import api
    from practicum.generate import fill_mask

    bundle = api.load(args.bundle, device=args.device)
    bundle.require_language_model("fill-mask", causal=False)
    ranked = fill_mask(bundle.model, bundle.tokenizer, args.text, top_k=args.top_k)
    if args.format == "json":
        print(json.dumps([[{"token": t, "probability": p} for t, p in c] for c in ranked], indent=2))
        return 0
    for i, candidates in enumerate(ranked):
        if len(ranked) > 1:
            print(f"mask {i + 1}:")
        for token, prob in candidates:
            print(f"  {prob:7.4f}  {token}")
    return 0


def cmd_import(args: argparse.Namespace, extra: list[str]) -> int:
    from practicum import api

    out = api.import_model(args.source, args.out)
    b = api.load(out)
    kind = "generate" if b.config.model.causal else "fill-mask"
    print(f"imported {args.source} ({b.info.get('architecture')}, "
          f"{b.info['parameters']:,} parameters) -> {out}")
    print(f"next:\n  {_invoked_as()} {kind} {out} " + ("--prompt \"Hello\"" if kind == "generate"
                                                     else "--text \"The [MASK] sat\""))
    return 0


def cmd_export_hf(args: argparse.Namespace, extra: list[str]) -> int:
    from practicum import api

    out = api.export_hf(args.bundle, args.out)
    print(f"wrote a Hugging Face folder to {out} (config.json, model.safetensors, tokenizer files)")
    return 0


def cmd_export_peft(args: argparse.Namespace, extra: list[str]) -> int:
    from practicum import api

    out = api.export_peft(args.bundle, args.out)
    print(f"wrote a PEFT LoRA adapter to {out} (adapter_config.json, adapter_model.safetensors)")
    return 0


# ---------------------------------------------------------------- compress commands (issue 5)


def cmd_compress(args: argparse.Namespace, extra: list[str]) -> int:
    from practicum import api
    from practicum.config import parse_overrides

    result = api.compress(
        args.bundle, prune=args.prune, structured=args.structured, scope=args.scope,
        recover_epochs=args.recover_epochs, quantize=args.quantize, distill=args.distill,
        temperature=args.temperature, alpha=args.alpha, overrides=parse_overrides(extra),
        data=args.data, split=args.split, out=args.out, repeats=args.repeats)
    print(result.markdown)
    print(f"compressed bundle: {result.bundle}  (table: {result.bundle / 'compress.md'})")
    return 0


# ---------------------------------------------------------------- export commands (issue 5)


def cmd_export(args: argparse.Namespace, extra: list[str]) -> int:
    from practicum import api

    result = api.export(args.bundle, args.format, args.out, check=not args.no_check, opset=args.opset,
                        tolerance=args.tolerance)
    art = result.info
    files = art.get("file") or ", ".join(art.get("files", []))
    how = f"; {art['exporter']} exporter, opset {art['opset']}" if "exporter" in art else ""
    print(f"exported {args.format} to {result.path} ({files}{how})")
    if not result.parity.get("checked", True):
        print("parity: not checked (--no-check)")
    lat = result.latency
    if lat:
        name = "onnxruntime" if "onnxruntime" in lat else "torchscript"
        print(f"batch-1 latency, {lat['runs']} runs, {lat['threads']} thread(s):")
        for label, key in (("PyTorch", "torch"), (name, name)):
            print(f"  {label:12} p50 {lat[key]['p50']:8.3f} ms   p95 {lat[key]['p95']:8.3f} ms")
        print(f"  {name} is {lat['speedup_p50']}x PyTorch's speed at p50")
    if args.format == "onnx" and art.get("task") in ("classification", "regression"):
        print(f"next:\n  {_invoked_as()} predict {result.path} --runtime onnx --input ...")
    return 0


# ---------------------------------------------------------------- explain commands (issue 5)


def cmd_explain(args: argparse.Namespace, extra: list[str]) -> int:
    from practicum import api

    bundle = api.load(args.bundle)
    options = {key: value for key, value in (("target", args.target), ("views", args.view),
               ("steps", args.steps), ("max_inputs", args.max_inputs), ("top_k", args.top_k))
               if value is not None}
    result = api.explain(bundle, _explain_inputs(args.input, args.split, bundle), out_dir=args.out,
                         **options)
    for item in result.items:
        print(f"[{item['index']}] {_short(item['input'], 48)}  {item['summary']}")
    pngs = sum(1 for f in result.files if f.suffix == ".png")
    print(f"wrote index.html, explain.json and {pngs} PNG files to {result.out_dir}")
    return 0


def _explain_inputs(values: list[str], split: str | None, bundle: Any) -> Any:
    """Prompts for a language model; for a text classifier plain text is one input; otherwise
    --input reads as in predict (a file, builtin:NAME, JSON)."""
    if any(not v.strip() for v in values):
        raise UserError("--input is empty; give a text, a record, a file or builtin:NAME (a prompt for an LM)")
    if bundle.is_language_model:
        if split is not None:
            raise UserError("--split picks rows of a classifier's data; a language model takes --input prompts")
        return [v.replace("\\n", "\n") for v in values]
    is_text = bundle.preprocessor is not None and bundle.preprocessor.kind == "text"

    def plain(v: str) -> bool:
        return not Path(v).exists() and not v.startswith("builtin:") and v.strip()[:1] not in "[{\""

    if is_text and split is None and all(plain(v) for v in values):
        return list(values)
    if len(values) > 1:
        raise UserError("give one --input for this bundle: a file, builtin:NAME or a JSON list of records")
    return _input_source(values[0], split, bundle)


# ---------------------------------------------------------------- serve commands (issue 5)


SERVE_LIMITS = {"max_image_pixels": int, "max_request_pixels": int, "max_sequences": int,
                "max_request_tokens": int, "max_stops": int, "max_stop_chars": int, "max_messages": int,
                "read_timeout": float, "keep_alive_timeout": float, "max_connections": int}
"""The serve limits that are plain --flags of their ServeSettings field."""


def cmd_serve(args: argparse.Namespace, extra: list[str]) -> int:
    from practicum import api

    names = ("api_key", "max_batch", "max_wait_ms", "max_body_bytes", "max_input_chars", "max_inputs",
             "max_new_tokens", "graceful_timeout", "device", *SERVE_LIMITS)
    settings = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
    if args.cors_origin:
        settings["cors_origins"] = tuple(args.cors_origin)
    if args.no_batching:
        settings["batching"] = False
    api.serve(args.bundles, host=args.host, port=args.port, **settings)
    return 0


def cmd_plan(args: argparse.Namespace, extra: list[str]) -> int:
    from practicum import api
    from practicum.config import parse_overrides
    from practicum.plan import format_plan

    result = api.plan(args.recipe, parse_overrides(extra), device=args.device, nproc=args.nproc,
                      steps=args.steps)
    print(json.dumps(result.to_dict(), indent=2) if args.format == "json" else format_plan(result))
    return 0

def cmd_config_show(args: argparse.Namespace, extra: list[str]) -> int:
    from practicum import api
    from practicum.config import load_config, parse_overrides, to_yaml, validate

    path = Path(args.recipe)
    if path.is_dir():  # a bundle or run folder: show the config it was trained with
        from practicum.bundle import find_bundle

        info = json.loads((find_bundle(path) / "bundle.json").read_text(encoding="utf-8"))
        cfg = load_config(validate(info["config"]).model_dump(mode="json"), parse_overrides(extra))
    else:
        cfg = api.resolve_config(args.recipe, parse_overrides(extra))
    print(to_yaml(cfg), end="")
    return 0


def cmd_config_fields(args: argparse.Namespace, extra: list[str]) -> int:
    from practicum.config import field_help

    for path, kind, text in field_help():
        print(f"{path:34} {kind:28} {text}")
    return 0


def cmd_data_list(args: argparse.Namespace, extra: list[str]) -> int:
    from practicum.data import list_datasets

    rows = list_datasets()
    print(f"{'name':16} {'kind':8} {'for':15} {'rows':>8}  description")
    for r in rows:
        note = f" [not installed: {r['note']}]" if "note" in r else ""
        print(f"{r['name']:16} {r['kind']:8} {r['task']:15} {r['rows']:>8}  {r['description']}{note}")
    print("\nuse any of them as a path: --data.path builtin:NAME; pretrain a language model on a "
          "text one's text column\n(data.corpus.text_field picks another) with "
          "`practicum pretrain --data builtin:NAME`")
    return 0


def cmd_data_inspect(args: argparse.Namespace, extra: list[str]) -> int:
    from practicum.data import inspect_file

    print(inspect_file(args.file, args.target))
    return 0


def cmd_predict(args: argparse.Namespace, extra: list[str]) -> int:
    from practicum import api

    bundle = api.load_onnx(args.bundle) if args.runtime == "onnx" else api.load(args.bundle)
    source = _input_source(args.input, args.split, bundle)
    rows = bundle.predict(source)
    if args.output:
        _write_rows(Path(args.output), rows)
        print(f"wrote {len(rows)} predictions to {args.output}")
    elif args.format == "json":
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            extra_col = f"\t{r['confidence']:.4f}" if "confidence" in r else ""
            print(f"{_short(r['input'])}\t{r.get('tagged', r['prediction'])}{extra_col}")
    return 0


def cmd_evaluate(args: argparse.Namespace, extra: list[str]) -> int:
    from practicum import api

    bundle = api.load(args.bundle)
    metrics = bundle.evaluate(_input_source(args.data, args.split, bundle))
    if args.format == "json":
        print(json.dumps(metrics, indent=2))
    else:
        for key, value in metrics.items():
            if isinstance(value, float):
                print(f"{key:22} {value:.4f}")
        unknown = metrics.get("unknown_categories")
        if unknown:
            cells = ", ".join(f"{column} {count}" for column, count in unknown.items())
            print(f"{'unknown_categories':22} {cells} (cells with a category not seen in training)")
    return 0


def cmd_report(args: argparse.Namespace, extra: list[str]) -> int:
    from practicum.evaluate.report import write_report

    run = Path(args.run)
    if not (run / "config.yaml").is_file():
        raise UserError(f"{run} is not a run folder (no config.yaml); pass a folder under runs/")
    print(write_report(run))
    return 0


def cmd_learn(args: argparse.Namespace, extra: list[str]) -> int:
    from practicum import learn

    if not args.lesson:
        lessons = learn.list_lessons(args.dir)
        width = max((len(lesson.name) for lesson in lessons), default=4)
        for lesson in lessons:
            print(f"{lesson.number:>2}  {lesson.name:<{width}}  {lesson.title}")
        print(f"\nrun one: {_invoked_as()} learn NAME [--fast]   (lessons in {learn.lessons_dir(args.dir)})")
        return 0
    lesson = learn.find_lesson(args.lesson, args.dir)
    print(f"# lesson {lesson.number}: {lesson.title} ({lesson.path})", flush=True)
    return learn.run_lesson(lesson, (["--fast"] if args.fast else []) + extra)


# ---------------------------------------------------------------- parser


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="practicum",
        description="Train, evaluate, save and reuse models from YAML recipes. Start with `practicum quickstart`.",
        epilog="Any config field can be overridden on train/quickstart/config show: --train.lr 3e-4. "
        "List them with `practicum config fields`.",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(metavar="COMMAND")

    q = _cmd(sub, "quickstart", cmd_quickstart, "train a CNN on digits and write a full run folder", True)
    q.add_argument("--out_dir", default=None, help="run folder (default runs/quickstart)")

    t = _cmd(sub, "train", cmd_train, "train a recipe; override any field with --section.field VALUE", True)
    t.add_argument("recipe", help="YAML recipe or shipped recipe name (configs/)")
    t.add_argument("--resume", nargs="?", const="", default=None, metavar="RUN_DIR",
                   help="continue a killed run exactly (its folder, default the recipe's out_dir)")
    t.add_argument("--shots", type=int, default=None, metavar="K",
                   help="few-shot: train on K examples per class (seeded; val/test stay whole)")
    _add_launch_flags(t)

    pt = _cmd(sub, "pretrain", cmd_pretrain,
              "pretrain a language model (GPT or BERT) on a text corpus; default: a char GPT on pydoc", True)
    pt.add_argument("recipe", nargs="?", default="pretrain_char",
                    help="LM recipe (default pretrain_char: a small char-level GPT)")
    pt.add_argument("--data", default=None, help="corpus: a .txt/.md file, a .jsonl, a folder, or builtin:pydoc")
    pt.add_argument("--resume", nargs="?", const="", default=None, metavar="RUN_DIR",
                    help="continue a killed run exactly (its folder, default the recipe's out_dir)")
    _add_launch_flags(pt)

    rc = _cmd(sub, "resume-check", cmd_resume_check,
              "self-test of exact resume: train a short run whole and killed+resumed, compare bit for bit", True)
    rc.add_argument("recipe", help="YAML recipe or shipped recipe name (any task: classifier, LM, LoRA, ...)")
    rc.add_argument("--steps", type=int, default=24, help="optimizer steps of the shortened run (default 24)")
    rc.add_argument("--keep", default=None, metavar="DIR", help="keep the run folders in DIR (default: deleted)")
    rc.add_argument("--device", default=None, help="train.device for the runs (auto, cpu, cuda, ...)")
    rc.add_argument("--nproc", type=int, default=None, metavar="N",
                    help="train each run on N processes (torchrun); the kill then comes from outside")

    la = _cmd(sub, "ladder", cmd_ladder,
              "compare zero-shot, few-shot, prompt tuning, linear probe, LoRA and full fine-tuning", True)
    la.add_argument("recipe", help="a fine-tuning recipe (model.type pretrained), e.g. banking77_minilm")
    la.add_argument("--rungs", default=None, help="comma-separated subset, e.g. zero_shot,few_shot,lora")
    la.add_argument("--shots", type=int, default=None, help="examples per class for few_shot (default 8)")
    la.add_argument("--seeds", type=int, default=None, help="repeats of the cheap rungs (default 5)")
    la.add_argument("--out", default=None, help="output folder (default: the recipe's out_dir + -ladder)")

    g = _cmd(sub, "generate", cmd_generate, "generate text with a causal language-model bundle")
    g.add_argument("bundle")
    g.add_argument("--prompt", action="append", required=True,
                   help="prompt text (repeat for a batch; \\n is a newline)")
    g.add_argument("--max-new-tokens", type=int, default=200)
    g.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    g.add_argument("--top-k", type=int, default=None)
    g.add_argument("--top-p", type=float, default=None)
    g.add_argument("--repetition-penalty", type=float, default=1.0)
    g.add_argument("--stop", action="append", default=None, help="stop string (repeatable)")
    g.add_argument("--seed", type=int, default=None)
    g.add_argument("--no-cache", action="store_true", help="recompute the whole sequence each step")
    g.add_argument("--chat", action="store_true",
                   help="send each prompt as a user message through the bundle's chat template")
    g.add_argument("--no-stream", action="store_true", help="print when done instead of token by token")
    g.add_argument("--device", default="cpu")
    g.add_argument("--format", choices=["text", "json"], default="text")

    fm = _cmd(sub, "fill-mask", cmd_fill_mask, "rank candidates for [MASK] with a masked-LM bundle")
    fm.add_argument("bundle")
    fm.add_argument("--text", required=True, help='text with [MASK], e.g. "The [MASK] sat"')
    fm.add_argument("--top-k", type=int, default=5)
    fm.add_argument("--device", default="cpu")
    fm.add_argument("--format", choices=["table", "json"], default="table")

    im = _cmd(sub, "import", cmd_import,
              "make a bundle from a Hugging Face folder (GPT-2, BERT, LLaMA) or a .gguf file")
    im.add_argument("source", help="Hugging Face model folder, or a LLaMA-family .gguf file")
    im.add_argument("--out", required=True, help="bundle folder to write")

    ex = _cmd(sub, "export-hf", cmd_export_hf, "write a language-model bundle as a Hugging Face folder")
    ex.add_argument("bundle")
    ex.add_argument("--out", required=True, help="folder to write (config.json, model.safetensors, ...)")

    ep = _cmd(sub, "export-peft", cmd_export_peft,
              "write a LoRA bundle's adapters in the PEFT library's format")
    ep.add_argument("bundle")
    ep.add_argument("--out", required=True, help="folder to write (adapter_config.json, adapter_model.safetensors)")

    # ---- compress parser (issue 5)
    co = _cmd(sub, "compress", cmd_compress, "shrink a bundle (distill -> prune -> quantize) into a new "
              "one and print the trade-off table; --section.field VALUE configures the student / recovery", True)
    co.add_argument("bundle")
    co.add_argument("--prune", type=float, default=None, metavar="AMOUNT",
                    help="zero this fraction of the prunable weights, smallest magnitude first (e.g. 0.5)")
    co.add_argument("--structured", action="store_true", help="prune whole channels, rows and heads")
    co.add_argument("--scope", choices=["global", "layer"], default="global",
                    help="rank weights across all layers (global) or within each layer")
    co.add_argument("--recover-epochs", type=float, default=0.0, metavar="N",
                    help="fine-tune N epochs (0.5: half) after pruning, zeros kept")
    co.add_argument("--quantize", default=None, metavar="SCHEME",
                    help="int8 (dynamic; classifiers), static-int8 (CNNs), int8-weight or int4-weight (LMs)")
    co.add_argument("--distill", default=None, metavar="STUDENT_RECIPE",
                    help="train this smaller recipe against the bundle's outputs first")
    co.add_argument("--temperature", type=float, default=None, help="distillation softening (default 2.0)")
    co.add_argument("--alpha", type=float, default=None,
                    help="weight of the teacher's soft loss vs the hard labels (default 0.5)")
    co.add_argument("--data", default=None, help="labelled file (LM: text) to score on (default: the bundle's own data)")
    co.add_argument("--split", choices=["train", "val", "test"], default=None,
                    help="which split of the data to score on (default test; val when there is none)")
    co.add_argument("--out", default=None, help="folder of the new bundle (default: <bundle>-compressed)")
    co.add_argument("--repeats", type=int, default=30, help="timed calls per latency figure")

    # ---- export parser (issue 5)
    xo = _cmd(sub, "export", cmd_export,
              "export a bundle (onnx, hf, peft, torchscript) and check its outputs against the bundle's")
    xo.add_argument("bundle")
    xo.add_argument("--format", required=True, choices=["onnx", "hf", "peft", "torchscript"])
    xo.add_argument("--out", default=None, help="folder to write (default: <bundle>-<format> beside the bundle)")
    xo.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's, 18)")
    xo.add_argument("--tolerance", type=float, default=None,
                    help="largest absolute difference the parity check accepts (default 1e-4)")
    xo.add_argument("--no-check", action="store_true", help="skip the parity check and the latency figures")

    # ---- explain parser (issue 5)
    xp = _cmd(sub, "explain", cmd_explain,
              "why a bundle predicts what it does: attributions, attention, logit lens (PNG + HTML)")
    xp.add_argument("bundle")
    xp.add_argument("--input", action="append", required=True,
                    help="text (repeatable), a record or list as JSON, a file, or builtin:NAME; "
                    "for a language model a prompt")
    xp.add_argument("--split", choices=["train", "val", "test"], default=None,
                    help="with --input builtin:NAME: that split of the bundle's own split")
    xp.add_argument("--target", default=None, help="class to explain (default: the predicted one)")
    xp.add_argument("--view", action="append", choices=["attributions", "attention", "logit-lens"],
                    default=None, help="what to show (repeatable; default: all the bundle supports)")
    xp.add_argument("--steps", type=int, default=None, help="integrated-gradients steps (more: a smaller delta)")
    xp.add_argument("--max-inputs", type=int, default=None, help="explain at most N inputs (the first ones)")
    xp.add_argument("--top-k", type=int, default=None, help="logit lens: next-token candidates kept per layer")
    xp.add_argument("--out", default=None, help="output folder (default: <bundle>-explain next to it)")

    # ---- serve parser (issue 5)
    from practicum.serve.settings import ServeSettings

    sv = _cmd(sub, "serve", cmd_serve, "serve bundles over HTTP: predict, embed, generate, "
              "OpenAI-compatible routes, a playground at /")
    sv.add_argument("bundles", nargs="+", metavar="BUNDLE",
                    help="bundle folder, or NAME=PATH to choose the model's name (default: the folder's)")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--api-key", default=None, help=ServeSettings.help("api_key"))
    sv.add_argument("--max-batch", type=int, default=None, help=ServeSettings.help("max_batch"))
    sv.add_argument("--max-wait-ms", type=float, default=None, help=ServeSettings.help("max_wait_ms"))
    sv.add_argument("--no-batching", action="store_true", help="run every request alone (max batch 1)")
    sv.add_argument("--max-body-bytes", type=int, default=None, help=ServeSettings.help("max_body_bytes"))
    sv.add_argument("--max-input-chars", type=int, default=None, help=ServeSettings.help("max_input_chars"))
    sv.add_argument("--max-inputs", type=int, default=None, help=ServeSettings.help("max_inputs"))
    sv.add_argument("--max-new-tokens", type=int, default=None, help=ServeSettings.help("max_new_tokens"))
    sv.add_argument("--graceful-timeout", type=float, default=None,
                    help=ServeSettings.help("graceful_timeout"))
    for name, kind in SERVE_LIMITS.items():
        sv.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None, help=ServeSettings.help(name))
    sv.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                    help=ServeSettings.help("cors_origins"))
    sv.add_argument("--device", default=None, help="where the models run (default cpu)")

    pl = _cmd(sub, "plan", cmd_plan, "pre-flight: memory, FLOPs, speed and time of a recipe's run", True)
    pl.add_argument("recipe", help="recipe file or shipped recipe name")
    pl.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N or mps (default: train.device)")
    pl.add_argument("--nproc", type=int, default=1, help="processes the run will use on this machine")
    pl.add_argument("--steps", type=int, default=5, help="training steps timed (after 2 warm-up steps)")
    pl.add_argument("--format", choices=["table", "json"], default="table")

    le = _cmd(sub, "learn", cmd_learn, "list the runnable lessons (examples/) or run one by name", True)
    le.add_argument("lesson", nargs="?", default=None, help="lesson name or number (none: list them)")
    le.add_argument("--fast", action="store_true", help="a run of seconds on less data (what CI runs)")
    le.add_argument("--dir", default=None, help="lessons folder (default: the checkout's examples/)")

    c = sub.add_parser("config", help="show configs and fields").add_subparsers(metavar="ACTION")
    s = _cmd(c, "show", cmd_config_show, "print the fully resolved config", True)
    s.add_argument("recipe", help="recipe file, shipped recipe name, or a bundle/run folder")
    _cmd(c, "fields", cmd_config_fields, "list every config field with its type and help")

    d = sub.add_parser("data", help="built-in data sets and file inspection").add_subparsers(metavar="ACTION")
    _cmd(d, "list", cmd_data_list, "list built-in data sets")
    i = _cmd(d, "inspect", cmd_data_inspect, "columns, types, class balance and problems of a file")
    i.add_argument("file")
    i.add_argument("--target", default=None, help="target column (default: guessed)")

    pr = _cmd(sub, "predict", cmd_predict, "predict with a bundle, using its training-time preprocessing")
    pr.add_argument("bundle")
    pr.add_argument("--input", required=True, help="file, folder, builtin:NAME, or JSON text")
    pr.add_argument("--split", choices=["train", "val", "test"], default=None,
                    help="with --input builtin:NAME or a recipe's data: that split of the bundle's own split")
    pr.add_argument("--output", default=None, help="write predictions to CSV or JSONL instead")
    pr.add_argument("--format", choices=["table", "json"], default="table")
    pr.add_argument("--runtime", choices=["torch", "onnx"], default="torch",
                    help="onnx: run the model.onnx of a folder from `export --format onnx` with onnxruntime")

    e = _cmd(sub, "evaluate", cmd_evaluate, "metrics of a bundle on labelled data")
    e.add_argument("bundle")
    e.add_argument("--data", required=True, help="labelled file, or builtin:NAME with --split")
    e.add_argument("--split", choices=["train", "val", "test"], default=None)
    e.add_argument("--format", choices=["table", "json"], default="table")

    r = _cmd(sub, "report", cmd_report, "write report.html for a run folder")
    r.add_argument("run")
    return p


def _cmd(sub: Any, name: str, func: Any, help_text: str, overrides: bool = False) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(func=func, takes_overrides=overrides)
    return parser


# ---------------------------------------------------------------- helpers


def _input_source(value: str, split: str | None, bundle: Any) -> Any:
    """A path stays a path; JSON text is parsed; --split re-creates the bundle's own data split."""
    if split is not None:
        from practicum.data import raw_split

        cfg = bundle.config.data.model_copy(update={"path": value}) if value != "-" else bundle.config.data
        return raw_split(cfg, bundle.config.task, split)
    text = value.strip()
    if text[:1] in "[{\"" and not _is_file(value):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"--input is not a file and not valid JSON ({exc.msg} at column {exc.colno})") from None
    return value


def _is_file(value: str) -> bool:
    """Whether a --input value names an existing path (JSON text can be too long to be one)."""
    try:
        return Path(value).exists()
    except OSError:
        return False


def _pull_overrides(argv: list[str]) -> tuple[list[str], list[str]]:
    """Take `--section.field VALUE` overrides out of a pretrain command line before argparse,
    which would otherwise give an override's value to pretrain's optional RECIPE argument."""
    if not argv or argv[0] != "pretrain":
        return argv, []
    kept, pulled, i = [], [], 0
    top_level = ("--out_dir", "--name")
    while i < len(argv):
        token = argv[i]
        key = token.split("=", 1)[0]
        if token.startswith("--") and ("." in key or key in top_level):
            take = 1 if "=" in token or i + 1 >= len(argv) else 2
            pulled += argv[i : i + take]
            i += take
        else:
            kept.append(token)
            i += 1
    return kept, pulled


def _write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return
    import csv

    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        conf = rows and "confidence" in rows[0]
        writer.writerow(["input", "prediction", *(["confidence"] if conf else [])])
        for r in rows:
            writer.writerow([r["input"], r["prediction"], *([r["confidence"]] if conf else [])])


def _invoked_as() -> str:
    """How the user ran us (`.venv/bin/practicum` when the venv is not activated)."""
    arg0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("practicum")
    if arg0.name != "practicum" or str(arg0) == "practicum":
        return "practicum"
    on_path = shutil.which("practicum")
    return "practicum" if on_path and Path(on_path).resolve() == arg0.resolve() else str(arg0)


def _short(text: Any, width: int = 60) -> str:
    s = str(text).replace("\n", " ")
    return s if len(s) <= width else s[: width - 1] + "…"


def _setup_logging(debug: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, format="%(message)s",
                        stream=sys.stderr)
    for noisy in ("matplotlib", "PIL", "urllib3", "fsspec"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if os.environ.get("RANK", "0") != "0" and not debug:  # a torchrun worker: rank 0 speaks for all
        logging.getLogger().setLevel(logging.ERROR)


def _version() -> str:
    from practicum import __version__

    return f"practicum {__version__}"


if __name__ == "__main__":
    sys.exit(main())
