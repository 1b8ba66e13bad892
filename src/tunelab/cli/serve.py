"""`tunelab serve`: the OpenAI-compatible API on this machine.

Point the official `openai` client at it and nothing else changes:

    client = openai.OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="anything-non-empty")
"""

from __future__ import annotations

import argparse
import os
import sys

from tunelab.cli.common import add_command


def register(subparsers) -> None:
    parser = add_command(
        subparsers, "serve", cmd_serve,
        help="Serve OpenAI's API (files, fine-tuning jobs, completions, chat, models) for local models.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Use it from the openai client with base_url=\"http://HOST:PORT/v1\" and any api_key (or one of the\n"
               "--api-key values when keys are set). Listens on 127.0.0.1 unless --host says otherwise.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (default: 127.0.0.1, this machine only).")
    parser.add_argument("--port", type=int, default=8000, help="Port (default: 8000; 0 picks a free one).")
    parser.add_argument("--api-key", action="append", default=[], dest="api_keys", metavar="KEY",
                        help="Require `Authorization: Bearer KEY`; repeat for several keys, also read from TUNELAB_API_KEY "
                             "(default: none, so any key is accepted).")
    parser.add_argument("--max-loaded-models", type=int, default=2,
                        help="Models kept warm in memory; the least recently used is unloaded (default: 2).")
    parser.add_argument("--cors-origin", action="append", default=[], dest="cors_origins", metavar="ORIGIN",
                        help="Allow browser calls from ORIGIN, e.g. http://localhost:3000 (repeatable; default none).")
    parser.add_argument("--max-upload-mb", type=float, default=512,
                        help="Largest file upload (POST /v1/files) accepted, in MB (default: 512).")
    limits = parser.add_argument_group(
        "limits (what one request may cost; beyond them the answer is 413, 408, 429 or 503, never a hang)")
    limits.add_argument("--max-body-mb", type=float, default=2,
                        help="Largest body of any other request, in MB (default: 2; no model reads a longer prompt).")
    limits.add_argument("--max-queue", type=int, default=1024, metavar="N",
                        help="Prompts that may wait per model; more get 429 with Retry-After (default: 1024).")
    limits.add_argument("--request-timeout", type=float, default=60, metavar="S",
                        help="A request still waiting for its model or its batch after S seconds gets 503 with "
                             "Retry-After (default: 60).")
    limits.add_argument("--read-timeout", type=float, default=30, metavar="S",
                        help="Seconds a client may take to send a request body (an upload: may pause); 408 "
                             "after that (default: 30). Request headers get the same, at most 10 s.")
    limits.add_argument("--shutdown-timeout", type=float, default=15, metavar="S",
                        help="On Ctrl-C or SIGTERM, requests in flight get S seconds to finish (default: 15).")
    parser.add_argument("--model-processes", default="auto", choices=["auto", "always", "never"],
                        help="Where models run: always, each in its own process (a crash or the memory of one "
                             "model stays there; the pick on a GPU, where inference would fight the HTTP thread "
                             "for the GIL); never, in the server process with a batching thread (no "
                             "inter-process hop per batch: the faster choice on a CPU); auto (default): never on "
                             "a CPU, always on a GPU.")
    parser.add_argument("--decision", default="argmax", choices=["argmax", "median", "good_vs_bad"],
                        help="Which label classification models with ordinal labels (star ratings) answer "
                             "/v1/completions with: argmax, the most probable (default); median, the median of "
                             "the distribution (fewest stars off on average); good_vs_bad, the more probable side "
                             "of the good-vs-bad cut. Use the rule `tunelab evaluate` scored best.")
    log = parser.add_argument_group(
        "prediction log (every answer of a fine-tuned model, for `tunelab monitor` and `tunelab feedback`)")
    log.add_argument("--no-log", dest="prediction_log", action="store_false",
                     help="Keep no prediction log (Prometheus /metrics still counts requests).")
    log.add_argument("--no-log-text", dest="log_text", action="store_false",
                     help="Log predictions without the prompts' text (a hash still finds duplicates).")
    log.add_argument("--log-keep-days", type=float, default=None, metavar="DAYS",
                     help="Delete logged predictions older than DAYS, on start and then hourly (default: keep all; "
                          "`tunelab logs prune` does it by hand).")
    log.add_argument("--log-flush-rows", type=int, default=256, metavar="N",
                     help="Write the log every N rows, or every --log-flush-ms, whichever comes first (default 256).")
    log.add_argument("--log-flush-ms", type=float, default=200, metavar="MS",
                     help="Write the log every MS milliseconds, or every --log-flush-rows rows (default 200). A server "
                          "killed with kill -9 loses the rows not written yet: about MS milliseconds' worth, plus a "
                          "write in progress.")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                        help="Log level of uvicorn (default: info).")


def cmd_serve(args: argparse.Namespace) -> int:
    from tunelab.errors import InvalidInputError
    from tunelab.jobs.follow import WORKER_CHECK_SECONDS
    from tunelab.netserve import ensure_can_listen, is_loopback, serve_factory
    from tunelab.store import Store

    keys = list(args.api_keys)
    if os.environ.get("TUNELAB_API_KEY"):
        keys += [k.strip() for k in os.environ["TUNELAB_API_KEY"].split(",") if k.strip()]
    if args.max_loaded_models < 1:
        raise InvalidInputError("--max-loaded-models must be at least 1.")
    if args.max_upload_mb <= 0 or args.max_body_mb <= 0:
        raise InvalidInputError("--max-upload-mb and --max-body-mb must be positive.")
    if args.max_queue < 1:
        raise InvalidInputError("--max-queue must be at least 1.")
    if min(args.request_timeout, args.read_timeout) <= 0 or args.shutdown_timeout < 0:
        raise InvalidInputError("--request-timeout and --read-timeout must be positive, --shutdown-timeout at least 0.")
    if args.log_keep_days is not None and args.log_keep_days <= 0:
        raise InvalidInputError("--log-keep-days must be positive.")
    if args.log_flush_rows < 1 or args.log_flush_ms <= 0:
        raise InvalidInputError("--log-flush-rows must be at least 1 and --log-flush-ms positive.")
    loopback = is_loopback(args.host)
    if not loopback and not keys:
        print(f"Warning: listening on {args.host} without an API key: anyone who can reach this port can upload "
              "files, start jobs and use your models. Add --api-key KEY (or set TUNELAB_API_KEY).", file=sys.stderr)
    options = dict(api_keys=keys, max_loaded_models=args.max_loaded_models, cors_origins=args.cors_origins,
                   max_upload_bytes=int(args.max_upload_mb * 2**20), loopback_only=loopback,
                   decision=args.decision, prediction_log=args.prediction_log, log_text=args.log_text,
                   log_keep_days=args.log_keep_days, log_flush_rows=args.log_flush_rows,
                   log_flush_ms=args.log_flush_ms, max_body_bytes=int(args.max_body_mb * 2**20),
                   max_queue=args.max_queue, request_timeout_s=args.request_timeout,
                   read_timeout_s=args.read_timeout,
                   isolate_models=args.model_processes, worker_check_s=WORKER_CHECK_SECONDS)
    # Opened here first so that a store that cannot be opened or migrated is a clear CLI error, not a
    # traceback from inside uvicorn's start-up; the app opens its own.
    store = Store()
    home = store.home
    store.engine.dispose()
    ensure_can_listen(args.host, args.port)  # a taken port: one clear error, not uvicorn's start-up log
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"tunelab API on http://{shown}:{args.port}/v1 (store: {home}"
          f"{', API key required' if keys else ''}); dashboard on http://{shown}:{args.port}/ui. Ctrl-C stops it.",
          file=sys.stderr)
    serve_factory(options, host=args.host, port=args.port, log_level=args.log_level,
                  shutdown_timeout_s=args.shutdown_timeout, header_timeout_s=min(10.0, args.read_timeout))
    return 0
