"""The ``procrustes-sim`` command.

Subcommands:

* ``run``: replay a trace (by default the bundled VGG-S Dropback trace) and print a per-layer,
  per-pass table; write ``summary.json`` and ``layers.csv``.
* ``trace synth``: write a seeded synthetic trace.
* ``trace generate``, ``trace import``, ``trace inspect``: see
  :mod:`procrustes_sim.trace_cli`.
* ``list``: show the bundled architectures, dataflows, workloads, layouts
  and balancers.

Invalid input ends with one line on stderr and exit code 2; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from procrustes_sim import __version__, trace_cli
from procrustes_sim.errors import InputError

log = logging.getLogger("procrustes_sim")

EXIT_INPUT = 2


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit code 2."""

    def error(self, message: str):
        self.exit(EXIT_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be 1 or more")
    return value


def _bits(largest: int):
    """An argparse type for a field width from 1 to *largest* bits."""
    def parse(text: str) -> int:
        value = _positive_int(text)
        if value > largest:
            raise argparse.ArgumentTypeError(f"{value} must be at most {largest} bits")
        return value
    return parse


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is outside [0, 1]")
    return value


def _add_hardware_options(parser: argparse.ArgumentParser) -> None:
    """Add the architecture and energy-table options shared by run and compare."""
    parser.add_argument("--arch", default="procrustes-256",
                        help="bundled architecture name or YAML path (default: %(default)s)")
    parser.add_argument("--energy", default="default-45nm",
                        help="bundled energy table name or YAML path (default: %(default)s)")


def _add_design_options(parser: argparse.ArgumentParser, single: bool = True) -> None:
    """Add the options that choose the dataflow, layout and balancer and their widths."""
    parser.add_argument("--config", default=None,
                        help="named configuration: procrustes (CxN, block-mask, "
                             "block-reorder; the default) or procrustes-lockstep (balancer none)")
    parser.add_argument("--dataflow", default=None,
                        help="bundled dataflow name or YAML path (default: the configuration's)")
    if single:
        parser.add_argument("--layout", default=None,
                            help="weight layout: dense, bitmask, csr, csc, block-mask or rle "
                                 "(default: the configuration's)")
        parser.add_argument("--balancer", default=None,
                            help="load balancer: none, ideal, block-reorder or sparten "
                                 "(default: the configuration's)")
    parser.add_argument("--pointer-bits", type=_bits(64), default=20,
                        help="width of block, row and column pointers in bits (default: %(default)s)")
    parser.add_argument("--run-bits", type=_bits(32), default=4,
                        help="width of the rle zero-run field in bits (default: %(default)s)")
    parser.add_argument("--transpose", choices=("reencode", "scatter"), default="reencode",
                        help="how csr, csc and rle serve BW's transposed reads: re-encode every "
                             "iteration, or read non-zeros one by one (default: %(default)s)")
    parser.add_argument("--rf-density", type=_fraction, default=None,
                        help="weight density the PE register files are sized for "
                             "(default: each layer's own density)")


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks and debug logging")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="log warnings and errors only")


def build_parser() -> argparse.ArgumentParser:
    """Build the command-line parser of every subcommand."""
    parser = _Parser(prog="procrustes-sim",
                     description="Simulate sparse DNN training on the Procrustes accelerator "
                                 "and compare it with a dense baseline.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser, required=True)

    run = commands.add_parser("run", help="replay a trace and report cycles and energy")
    run.add_argument("--trace", help="trace file (.pstrace); default: the bundled VGG-S "
                                     "Dropback trace, or, when --workload or --batch is "
                                     "given, a synthetic trace at 10%% weight density, seed 0")
    run.add_argument("--workload", help="bundled workload name or topology CSV path "
                                        "(default: the trace's workload, or vgg_s)")
    _add_hardware_options(run)
    _add_design_options(run)
    run.add_argument("--skip", default=None,
                     help="operand whose zeros each pass skips, e.g. FW=W,BW=W,WU=X "
                          "(the default); 'none' skips nothing")
    run.add_argument("--batch", type=_positive_int,
                     help="minibatch size N; must match the trace (default: the trace's, "
                          "or 16 for the synthetic default)")
    run.add_argument("--iterations", type=_positive_int,
                     help="replay the first this many iterations of the trace (default: all)")
    run.add_argument("--per-pe", action="store_true",
                     help="simulate each PE as its own process on small layers")
    run.add_argument("--max-events", type=_positive_int, default=128,
                     help="most tile chunks per layer and pass in the engine "
                          "(default: %(default)s)")
    run.add_argument("--record-pe", action="append", default=[], metavar="LAYER:PASS",
                     help="keep the per-step, per-PE work of one layer and pass in "
                          "pe_work.npz, for the imbalance heatmap (repeatable)")
    run.add_argument("--out", default=None,
                     help="folder for summary.json and layers.csv (default: results/<workload>)")
    _add_common(run)

    trace = commands.add_parser("trace", help="make or inspect sparse-training traces")
    trace_commands = trace.add_subparsers(dest="trace_command", parser_class=_Parser,
                                          required=True)
    synth = trace_commands.add_parser("synth", help="write a seeded synthetic Bernoulli trace")
    synth.add_argument("--workload", required=True, help="bundled workload name or CSV path")
    synth.add_argument("--density", required=True, type=_fraction,
                       help="weight density, the fraction of non-zero weights in [0, 1]")
    synth.add_argument("--act-density", type=_fraction, default=0.5,
                       help="input-activation density in [0, 1] (default: %(default)s)")
    synth.add_argument("--grad-density", type=_fraction, default=0.5,
                       help="output-gradient density in [0, 1] (default: %(default)s)")
    synth.add_argument("--batch", type=_positive_int, default=16,
                       help="minibatch size N (default: %(default)s)")
    synth.add_argument("--iterations", type=_positive_int, default=1,
                       help="iterations to generate (default: %(default)s)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    synth.add_argument("--out", required=True, help="trace file to write (.pstrace)")
    synth.add_argument("--pattern", default="bernoulli",
                       choices=("bernoulli", "channel-skew", "block"),
                       help="placement of non-zeros: independent elements, per-channel "
                            "densities drawn from a Beta distribution, or all-or-nothing "
                            "blocks (default: %(default)s)")
    synth.add_argument("--concentration", type=float, default=None,
                       help="channel-skew: alpha + beta of the Beta distribution; smaller "
                            "skews more (default: 2.0)")
    synth.add_argument("--block", type=_positive_int, default=None,
                       help="block: block edge along the first two axes of each mask "
                            "(default: 4)")
    _add_common(synth)
    trace_cli.add_subcommands(trace_commands, _add_common, _positive_int, _fraction)

    compare = commands.add_parser("compare", help="replay one trace through several layouts "
                                                  "and balancers")
    compare.add_argument("--trace", help="trace file (.pstrace); default: as for run, the "
                                         "bundled VGG-S Dropback trace")
    compare.add_argument("--workload", help="bundled workload name or topology CSV path")
    _add_hardware_options(compare)
    compare.add_argument("--layouts", default="dense,bitmask,csr,csc,block-mask,rle",
                         help="comma-separated layouts (default: %(default)s)")
    compare.add_argument("--balancers", default="none,ideal,block-reorder,sparten",
                         help="comma-separated balancers (default: %(default)s)")
    _add_design_options(compare, single=False)
    compare.add_argument("--iterations", type=_positive_int,
                         help="replay the first this many iterations (default: all)")
    compare.add_argument("--out", default=None,
                         help="folder for compare.csv (default: results/<workload>-compare)")
    _add_common(compare)

    _add_plot_commands(commands)

    listing = commands.add_parser("list", help="list bundled configurations")
    _add_common(listing)
    return parser


def _add_plot_commands(commands) -> None:
    """Add the ``plot`` and ``report`` subcommands, which read a results folder."""
    from procrustes_sim.results import FORMATS, KINDS

    plot = commands.add_parser("plot", help="draw figures of a results folder written by run")
    plot.add_argument("results", metavar="RESULTS_FOLDER",
                      help="folder with summary.json and layers.csv (the --out of run)")
    plot.add_argument("--kind", choices=(*KINDS, "all"), default="all",
                      help="figure to draw (default: %(default)s, which leaves out figures "
                           "whose data the run did not record)")
    plot.add_argument("--layer", help="imbalance: layer whose per-PE work to show "
                                      "(default: every recorded layer and pass)")
    plot.add_argument("--pass", dest="pass_", choices=("FW", "BW", "WU"),
                      help="imbalance: pass whose per-PE work to show")
    plot.add_argument("--iteration", type=int,
                      help="imbalance: iteration to show (default: the first recorded)")
    plot.add_argument("--trace", help="density: trace file, if summary.json names none that "
                                      "exists")
    plot.add_argument("--format", choices=FORMATS, default="png",
                      help="file format: png (200 dpi), or svg or pdf for vector figures "
                           "(default: %(default)s)")
    plot.add_argument("--out", help="folder for the figures (default: RESULTS_FOLDER/plots)")
    _add_common(plot)

    report = commands.add_parser("report", help="write report.md and a self-contained "
                                                "report.html of a results folder")
    report.add_argument("results", metavar="RESULTS_FOLDER",
                        help="folder with summary.json and layers.csv (the --out of run)")
    report.add_argument("--trace", help="trace file for the density figure, if summary.json "
                                        "names none that exists")
    report.add_argument("--out", help="folder for the pages and figures "
                                      "(default: RESULTS_FOLDER/report)")
    _add_common(report)


def _configure_logging(args: argparse.Namespace) -> None:
    level = logging.INFO
    if args.quiet:
        level = logging.WARNING
    if args.debug:
        level = logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


def _command_run(args: argparse.Namespace) -> int:
    from procrustes_sim.simulation import simulate

    # Check a given --out before the simulation, which may take minutes.
    if args.out:
        _check_out_folder(Path(args.out))
    report = simulate(args.trace, workload=args.workload, arch=args.arch, energy=args.energy,
                      config=args.config, dataflow=args.dataflow, layout=args.layout,
                      balancer=args.balancer, pointer_bits=args.pointer_bits,
                      run_bits=args.run_bits, transpose=args.transpose,
                      rf_density=args.rf_density,
                      skip=args.skip, batch=args.batch, iterations=args.iterations,
                      per_pe=args.per_pe, max_events=args.max_events,
                      record_pe=args.record_pe)
    out = Path(args.out) if args.out else Path("results") / report.header["workload"]
    _check_out_folder(out)
    summary, layers = report.write(out)
    print(report.format_table())
    print(f"wrote {summary} and {layers}")
    return 0


def _check_out_folder(out: Path) -> None:
    """Raise InputError unless *out* is, or can become, a writable folder."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {str(out)!r} is a file; give a folder")
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"--out {str(out)!r} cannot be created because {str(existing)!r} is a "
                         "file; give another folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"--out {str(out)!r} is not writable ({str(existing)!r} does not allow "
                         "writing); give another folder")


def _command_trace(args: argparse.Namespace) -> int:
    from procrustes_sim.trace import synthesize
    from procrustes_sim.workload import load_workload

    if args.trace_command in trace_cli.COMMANDS:
        return trace_cli.run(args)
    for option, value, pattern in (("--concentration", args.concentration, "channel-skew"),
                                   ("--block", args.block, "block")):
        if value is not None and args.pattern != pattern:
            raise InputError(f"{option} applies to --pattern {pattern} only, not "
                             f"{args.pattern}; drop it or choose --pattern {pattern}")
    workload = load_workload(args.workload)
    path = synthesize(workload, args.batch, Path(args.out), density=args.density,
                      act_density=args.act_density, grad_density=args.grad_density,
                      iterations=args.iterations, seed=args.seed, pattern=args.pattern,
                      concentration=2.0 if args.concentration is None else args.concentration,
                      block=4 if args.block is None else args.block)
    print(f"wrote {path}")
    return 0


def _command_compare(args: argparse.Namespace) -> int:
    from procrustes_sim.compare import compare, format_rows, write_csv

    if args.out:
        _check_out_folder(Path(args.out))
    layouts = [name.strip() for name in args.layouts.split(",") if name.strip()]
    balancers = [name.strip() for name in args.balancers.split(",") if name.strip()]
    rows = compare(args.trace, layouts, balancers, workload=args.workload, arch=args.arch,
                   energy=args.energy, config=args.config, dataflow=args.dataflow,
                   pointer_bits=args.pointer_bits, run_bits=args.run_bits,
                   transpose=args.transpose, rf_density=args.rf_density,
                   iterations=args.iterations)
    workload = args.workload or "run"
    if args.trace:
        from procrustes_sim.trace import Trace
        with Trace.open(args.trace) as opened:
            workload = opened.workload_name
    out = Path(args.out) if args.out else Path("results") / f"{Path(workload).stem}-compare"
    _check_out_folder(out)
    path = write_csv(rows, out)
    print(format_rows(rows))
    print(f"wrote {path}")
    return 0


def _command_plot(args: argparse.Namespace) -> int:
    from procrustes_sim.plots import plot

    paths = plot(args.results, args.kind, out=args.out, fmt=args.format, layer=args.layer,
                 pass_=args.pass_, iteration=args.iteration, trace=args.trace)
    for path in paths:
        print(f"wrote {path}")
    return 0


def _command_report(args: argparse.Namespace) -> int:
    from procrustes_sim.reportpage import write_report_page

    markdown, page = write_report_page(args.results, args.out, trace=args.trace)
    print(f"wrote {markdown} and {page}")
    return 0


def _command_list(args: argparse.Namespace) -> int:
    import dataflows
    import workloads
    from procrustes_sim.balancers import BALANCERS
    from procrustes_sim.config import available_archs, available_energy_tables
    from procrustes_sim.layouts import LAYOUTS

    print(f"architectures: {', '.join(available_archs())}")
    print(f"energy tables: {', '.join(available_energy_tables())}")
    print(f"dataflows:     {', '.join(dataflows.available())}")
    print(f"workloads:     {', '.join(workloads.available())}")
    print(f"layouts:       {', '.join(LAYOUTS)}")
    print(f"balancers:     {', '.join(BALANCERS)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command; return its exit code."""
    args = build_parser().parse_args(argv)
    _configure_logging(args)
    handlers = {"run": _command_run, "trace": _command_trace, "list": _command_list,
                "compare": _command_compare}
    handlers.update(plot=_command_plot, report=_command_report)
    try:
        return handlers[args.command](args)
    except InputError as error:
        if args.debug:
            raise
        print(f"procrustes-sim: error: {error}", file=sys.stderr)
        return EXIT_INPUT
    except OSError as error:
        if args.debug:
            raise
        name = f" {error.filename!r}" if error.filename else ""
        print(f"procrustes-sim: error: {error.strerror or error}{name}; check the path and "
              "its permissions", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("procrustes-sim: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
