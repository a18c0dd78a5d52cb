"""What every `edge-fleet` command shares: the operator's settings (the broker, the database, the
cloud's key, from flags or EDGE_FLEET_*), its connection to the broker, its exit codes, and its output,
one JSON line per record.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from pathlib import Path
from typing import Any

from edge.fleet.link import BrokerOptions, Link, LinkError

EXIT_FAILED = 1
EXIT_TIMEOUT = 3


def encode(value: Any) -> str:
    """One record as one JSON line (no spaces; dates and paths as text)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def broker_options(args: argparse.Namespace) -> BrokerOptions:
    """The broker to reach, with its credentials and CA, from the flags."""
    password = Path(args.password_file).read_text().strip() if args.password_file else None
    return BrokerOptions.parse(args.broker, username=args.username, password=password,
                               ca=Path(args.ca) if args.ca else None)


def need(args: argparse.Namespace, name: str) -> str:
    """A setting the command cannot do without (the database, the key): its value, or exit saying which flag gives it."""
    value = getattr(args, name)
    if not value:
        flag = {"db": "--db or EDGE_FLEET_DB", "key": "--key or EDGE_FLEET_KEY"}[name]
        sys.exit(f"edge-fleet: {args.command} needs {flag}")
    return value


def connect(args: argparse.Namespace, subscriptions: tuple[str, ...] = ()) -> Link:
    """A link to the broker subscribed to `subscriptions`, or exit saying why not."""
    cid = f"edge-fleet-cli-{secrets.token_hex(4)}"
    try:
        return Link(broker_options(args), cid, subscriptions=subscriptions, queue_size=10_000).start(args.timeout)
    except LinkError as error:
        sys.exit(f"edge-fleet: {error}")
