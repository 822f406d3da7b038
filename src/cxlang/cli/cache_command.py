"""``cx cache clear [DIR]``: forget the model answers ``cx run --cache DIR`` kept."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..services import ConfigError, load_settings
from ..services.cache import clear_cache

__all__ = ["add_parser", "run"]


def add_parser(commands: Any) -> None:
    cache = commands.add_parser("cache", help="the cache of model answers (cx run --cache)")
    actions = cache.add_subparsers(dest="action", metavar="ACTION", required=True)
    clear = actions.add_parser("clear", help="remove the cached answers")
    clear.add_argument("directory", nargs="?", metavar="DIR",
                       help="the cache directory (default: cache in cx.toml)")


def run(args: argparse.Namespace) -> int:
    directory = args.directory
    if directory is None:
        try:
            directory = load_settings().cache
        except ConfigError as exc:
            print(f"cx cache: {exc}", file=sys.stderr)
            return 2
    if directory is None:
        print("cx cache: which cache? name its directory (cx cache clear DIR) or set cache "
              "in cx.toml", file=sys.stderr)
        return 2
    removed = clear_cache(directory)
    print(f"{directory}: removed {removed} cached answer{'s' * (removed != 1)}")
    return 0
