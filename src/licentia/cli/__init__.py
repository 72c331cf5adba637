"""The `licentia` command: a thin layer over the server, the signing module and the client SDK.

`parser` holds the arguments; each subcommand group runs from its own module (`serving`, `licenses`,
`offline`, `relationships`, `application`), and `terminal` is what the admin subcommands share."""

from __future__ import annotations

import sys

from licentia import license_file
from licentia.cli.parser import build_parser
from licentia.config import ConfigError


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (OSError, license_file.LicenseFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from licentia.client import LicenseDenied, ServerUnavailable

        if isinstance(exc, LicenseDenied | ServerUnavailable):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise

