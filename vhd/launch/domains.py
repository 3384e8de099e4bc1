"""Per-domain training loop of the highlight benchmarks, printing the paper-style table.

YouTube Highlights (6 domains) and TVSum (10 domains) are trained and evaluated one domain at a
time (HPCL Tables 1-2, as Joint-VA and UMT do): for every domain this runs ``vhd fit`` with the
config and the domain override, evaluates the final (``--select last``, default) or best
checkpoint on the validation split (the benchmarks' test split), prints one row per domain and
the average over domains, and writes them to ``<run_root>/domains.json``::

    vhd domains --config configs/hpcl_youtube.yaml
    vhd domains --config configs/hpcl_tvsum.yaml --domains VT VU -- \\
        --trainer.max_epochs=5 --model.init_args.architecture=v_only

Arguments after ``--`` are passed to every run as CLI overrides.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from vhd.lightning_cli import make_cli

# Domain order of the papers' tables (HPCL Table 1 and Table 2).
DOMAINS = {
    "youtube": ["dog", "gymnastics", "parkour", "skating", "skiing", "surfing"],
    "tvsum": ["VT", "VU", "GA", "MS", "PK", "PR", "FM", "BK", "BT", "DS"],
}


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    own, overrides = (
        (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    )
    parser = argparse.ArgumentParser(prog="vhd domains", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--config", required=True, help="a highlight config, e.g. configs/hpcl_youtube.yaml"
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
    return parser.parse_args(own), overrides


def run_domain(
    config: str,
    domain: str,
    domain_key: str,
    run_dir: Path,
    select: str,
    overrides: list[str],
    has_logger_dir: bool,
) -> dict[str, float]:
    """Fit one domain's model and return its validation metrics (keys like ``val/mAP``)."""
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
    return {key: float(value) for key, value in results.items()} | {
        "main_metric": cli.model.main_metric
    }


def format_table(rows: dict[str, dict[str, Any]], metric: str) -> str:
    width = max(len(name) for name in [*rows, "average"]) + 2
    lines = [f"{'domain':<{width}}{metric}"]
    lines += [f"{name:<{width}}{values[metric]:.4f}" for name, values in rows.items()]
    average = sum(values[metric] for values in rows.values()) / len(rows)
    lines.append(f"{'average':<{width}}{average:.4f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    options, overrides = parse_args(list(sys.argv[1:] if argv is None else argv))
    config = yaml.safe_load(Path(options.config).read_text())
    protocol = config.get("data", {}).get("init_args", {}).get("protocol")
    domains = options.domains or DOMAINS.get(protocol)
    if not domains:
        raise SystemExit(f"no domain list for protocol {protocol!r}; pass --domains")
    trainer = config.get("trainer", {})
    run_root = Path(options.run_root or trainer.get("default_root_dir", "runs/domains"))
    has_logger_dir = "save_dir" in (trainer.get("logger") or {}).get("init_args", {})
    rows: dict[str, dict[str, Any]] = {}
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
    metric = rows[domains[0]]["main_metric"]
    table = format_table(rows, metric)
    average = sum(values[metric] for values in rows.values()) / len(rows)
    run_root.mkdir(parents=True, exist_ok=True)
    summary = {
        "config": options.config,
        "select": options.select,
        "metric": metric,
        "domains": rows,
        "average": average,
    }
    (run_root / "domains.json").write_text(json.dumps(summary, indent=2))
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
