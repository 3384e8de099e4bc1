"""Per-domain training loop of the highlight benchmarks, printing the paper-style table.

YouTube Highlights (6 domains) and TVSum (10 domains) are trained and evaluated one domain at a
time (HPCL Tables 1-2, as Joint-VA and UMT do): for every domain this runs ``vhd fit`` with the
config and the domain override, evaluates the final (``--select last``, default) or best
checkpoint on the validation split (the benchmarks' test split), writes its metrics to
``<run_root>/<domain>/result.json``, prints one row per domain and the average over domains,
and writes them to ``<run_root>/domains.json``::

    vhd domains --config configs/hpcl_youtube.yaml
    vhd domains --config configs/hpcl_tvsum.yaml --domains VT VU -- \\
        --trainer.max_epochs=5 --model.init_args.architecture=v_only

On a SLURM cluster the domains run in parallel, one job array task each, and ``--collect``
builds the table from their result files::

    vhd domains --slurm --config configs/hpcl_youtube.yaml --time 02:00:00 --submit
    vhd domains --collect runs/hpcl_youtube

Arguments after ``--`` are passed to every run as CLI overrides.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from vhd.launch.errors import Parser, UserError, report
from vhd.launch.results import (
    DOMAINS,
    SUMMARY,
    collect,
    discover_domains,
    format_table,
    read_manifest,
    summarize,
    write_json,
    write_result,
)
from vhd.launch.run_config import load_configs
from vhd.launch.slurm_options import add_slurm_options

__all__ = ["DOMAINS", "format_table", "main", "run_domain"]

# Options that only mean something with --slurm (their dest names).
SLURM_ONLY = ["gpus_per_node", "devices", "cpus_per_task", "mem", "time", "partition"]
SLURM_ONLY += ["account", "qos", "job_name", "dry_run", "submit"]


def make_parser() -> Parser:
    parser = Parser(prog="vhd domains", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--config", help="a highlight config, e.g. configs/hpcl_youtube.yaml (required to run)"
    )
    parser.add_argument(
        "--domains", nargs="+", help="default: every domain of the config's protocol"
    )
    parser.add_argument(
        "--domain_key", default="data.init_args.domain", help="the config key of the domain"
    )
    parser.add_argument(
        "--select", choices=["last", "best"], default="last", help="checkpoint to evaluate"
    )
    parser.add_argument("--run_root", help="default: the config's trainer.default_root_dir")
    parser.add_argument(
        "--no_summary",
        action="store_true",
        help="write only <run_root>/<domain>/result.json, not domains.json (what a job array "
        "task does; --collect builds the table)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--slurm", action="store_true", help="write a SLURM job array, one task per domain"
    )
    mode.add_argument(
        "--collect",
        metavar="RUN_ROOT",
        help="print the table of the finished domains' result.json files and list the others "
        "(domains: --domains, else the --config protocol's, else those submitted or found there)",
    )
    add_slurm_options(parser, "SLURM (with --slurm)")
    return parser


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    own, overrides = (
        (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    )
    parser = make_parser()
    options = parser.parse_args(own)
    if not options.collect and not options.config:
        parser.error("--config is required (except with --collect)")
    if not options.slurm:
        given = [name for name in SLURM_ONLY if getattr(options, name) not in (None, False)]
        if given:
            flag = "--" + given[0].replace("_", "-")
            parser.error(f"{flag} is a SLURM option: add --slurm")
    return options, overrides


def run_domain(
    config: str,
    domain: str,
    domain_key: str,
    run_dir: Path,
    select: str,
    overrides: list[str],
    has_logger_dir: bool,
) -> dict[str, float]:
    """Fit one domain's model, write its ``result.json`` and return its validation metrics
    (keys like ``val/mAP``)."""
    from vhd.lightning_cli import make_cli  # Lightning only when training (fast --collect)

    args = [
        "fit",
        "--config",
        config,
        f"--{domain_key}={domain}",
        f"--trainer.default_root_dir={run_dir}",
    ]
    if has_logger_dir:
        args.append(f"--trainer.logger.init_args.save_dir={run_dir}")
    cli = make_cli([*args, *overrides])
    ckpt_path = "best" if select == "best" else None
    (results,) = cli.trainer.validate(
        cli.model, datamodule=cli.datamodule, ckpt_path=ckpt_path, verbose=False
    )
    metrics = {key: float(value) for key, value in results.items()} | {
        "main_metric": cli.model.main_metric
    }
    if cli.trainer.is_global_zero:
        write_result(run_dir, metrics)
    return metrics


def protocol_domains(config: dict[str, Any], path: str) -> list[str]:
    protocol = config.get("data", {}).get("init_args", {}).get("protocol")
    if protocol not in DOMAINS:
        raise UserError(f"{path}: no domain list for protocol {protocol!r}; pass --domains")
    return DOMAINS[protocol]


def run_all(
    options: argparse.Namespace,
    config: dict[str, Any],
    domains: list[str],
    run_root: Path,
    overrides: list[str],
) -> int:
    """Train and evaluate ``domains`` one after the other in this process."""
    from vhd.tracking import WandbRun, finish_runs, log_domain_table

    logger = (config.get("trainer") or {}).get("logger")
    has_logger_dir = isinstance(logger, dict) and "save_dir" in (logger.get("init_args") or {})
    rows: dict[str, dict[str, Any]] = {}
    tracked: list[WandbRun] = []  # the domains' W&B runs, each ended before the next starts
    for domain in domains:
        rows[domain] = run_domain(
            options.config,
            domain,
            options.domain_key,
            run_root / domain,
            options.select,
            overrides,
            has_logger_dir,
        )
        tracked += finish_runs()
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    summary, table = summarize(rows, options.config, options.select)
    if not options.no_summary and rank_zero_only.rank == 0:
        write_json(run_root / SUMMARY, summary)
    if tracked and not options.no_summary:  # only rank 0 has W&B runs
        log_domain_table(tracked[-1], run_root, summary)
    print(table)
    return 0


def collect_runs(options: argparse.Namespace) -> int:
    """``--collect``: the table of the finished domains; exit 1 while any is missing."""
    run_root = Path(options.collect)
    if not run_root.is_dir():
        raise UserError(f"run root {run_root} is not a folder; pass the --run_root of the runs")
    manifest = read_manifest(run_root)
    if options.domains:
        domains = list(options.domains)
    elif options.config:
        domains = protocol_domains(load_configs([options.config]), options.config)
    else:
        domains = discover_domains(run_root)
    if not domains:
        raise UserError(
            f"no domains found under {run_root} (no result.json, no job array); "
            "pass --domains or --config"
        )
    rows, problems = collect(run_root, domains)
    for domain, (state, reason) in problems.items():
        print(f"{state}: {domain}: {reason}", file=sys.stderr)
    if not rows:
        print(f"no domain of {run_root} has finished yet", file=sys.stderr)
        return 1
    missing = {domain: f"{state}: {reason}" for domain, (state, reason) in problems.items()}
    config = options.config or manifest.get("config")
    summary, table = summarize(rows, config, manifest.get("select"), missing)
    try:
        write_json(run_root / SUMMARY, summary)
    except OSError as error:
        raise UserError(
            f"cannot write {run_root / SUMMARY} ({error.strerror}); make it writable"
        ) from error
    print(table)
    if problems:
        print(f"{len(rows)} of {len(domains)} domains finished", file=sys.stderr)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    options, overrides = parse_args(argv)
    try:
        if options.collect:
            return collect_runs(options)
        config = load_configs([options.config])
        domains = options.domains or protocol_domains(config, options.config)
        trainer = config.get("trainer") or {}
        run_root = Path(options.run_root or trainer.get("default_root_dir", "runs/domains"))
        if options.slurm:
            from vhd.launch.domains_slurm import write_array

            return write_array(options, argv, config, domains, run_root, overrides)
        return run_all(options, config, domains, run_root, overrides)
    except UserError as error:
        return report(error)


if __name__ == "__main__":
    sys.exit(main())
