"""The core's `xd-rcdepth` subcommands, one module each with ``add_arguments(parser)`` and
``run(args) -> int`` (registered in ``xd_rcdepth_core.cli.CORE_COMMANDS``): info, synth, prepare,
show, train, eval, saliency, export, import-weights. Each module does argument wiring; the work is elsewhere.
"""
