"""The paper's claims checked at small scale on synthetic data: ``mmtrack-kd experiments``.

The CLI hands this sub-command its whole argument list (:func:`main`), so its flags live here
beside what they drive.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from mmtrack_kd.experiments.arms import DEFAULT_ARMS
from mmtrack_kd.experiments.planning import write_recipes
from mmtrack_kd.experiments.running import run_experiments


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``mmtrack-kd experiments``."""
    parser = argparse.ArgumentParser(prog="mmtrack-kd experiments", description=__doc__.split("\n")[0])
    parser.add_argument("arms", nargs="?", default=str(DEFAULT_ARMS),
                        help="the arms table, or the folder holding arms.yaml (default: %(default)s)")
    parser.add_argument("--out", default="runs/experiments",
                        help="run folders, records, tracked boxes and generated data (default: %(default)s)")
    parser.add_argument("--seeds", default="0,1", help="comma-separated")
    parser.add_argument("--only", action="append", help="arm name or job id (repeatable)")
    parser.add_argument("--reduced", action="store_true",
                        help="CI smoke setting: tiny model and data, a handful of steps per arm")
    parser.add_argument("--workers", type=int, default=1, help="tracker processes during evaluation")
    parser.add_argument("--report", default=None,
                        help="the markdown report (default: <out>/results.md); results.json goes beside it")
    parser.add_argument("--dry-run", action="store_true",
                        help="train nothing: write the report of the arms that have finished")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override every arm's recipe (repeatable)")
    parser.add_argument("--rerun", action="append", default=[], metavar="JOB_ID",
                        help="run a finished job again; its old record, run folder and boxes are "
                             "set aside under <out>/superseded/ (repeatable; needs --reason)")
    parser.add_argument("--reason", default=None, help="why the --rerun jobs are run again")
    parser.add_argument("--write-recipes", default=None, metavar="DIR",
                        help="write each job's full recipe into DIR and stop")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mmtrack-kd experiments`` with ``argv`` (default: this process's arguments); prints
    the report's path, or with ``--write-recipes`` each recipe written."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if args.write_recipes:
        for path in write_recipes(args.arms, args.write_recipes, seeds, args.out, args.set):
            print(path)
        return 0
    path = run_experiments(args.arms, args.out, seeds, args.only, args.reduced, args.workers,
                           args.report, dry_run=args.dry_run, overrides=args.set,
                           rerun=args.rerun, reason=args.reason)
    print(path)
    return 0
