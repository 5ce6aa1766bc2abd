"""The architecture of a training run (`HTSATConfig`) from the command line, for `htsat-live train` on soundscapes
and on clips alike: --embed-dim, --depths and --heads over the defaults of a new run (or a resumed run's own)."""

ARCHITECTURE = {"embed_dim": 32, "depths": (2, 2, 2, 2), "num_heads": (1, 2, 4, 8)}  # of a new run without --init


def add_architecture_arguments(parser) -> None:
    parser.add_argument("--embed-dim", type=int, help=f"default {ARCHITECTURE['embed_dim']}")
    parser.add_argument("--depths", type=int, nargs="+", help=f"default {' '.join(map(str, ARCHITECTURE['depths']))}")
    parser.add_argument("--heads", type=int, nargs="+", help=f"default {' '.join(map(str, ARCHITECTURE['num_heads']))}")


def architecture_config(args, base: dict | None = None):
    """The HTSATConfig of the flags given, the others as in `base` (a resumed run's config; default ARCHITECTURE)."""
    from htsat_live.model.htsat import HTSATConfig

    given = {"embed_dim": args.embed_dim, "depths": args.depths, "num_heads": args.heads}
    return HTSATConfig(
        **{
            **(base or ARCHITECTURE),
            **{k: tuple(v) if isinstance(v, list) else v for k, v in given.items() if v is not None},
        }
    )
