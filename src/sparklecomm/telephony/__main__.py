"""A stand-alone SIP registrar for development and interop tests, until ``sparklecomm
serve`` starts the SIP server itself::

    python -m sparklecomm.telephony --port 5060 --user alice:secret --user bob:secret

Credentials and bindings live in memory (``--bindings FILE`` keeps bindings in a JSON
file). It prints ``READY <port>`` once listening and stops on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from sparklecomm.core.clock import SystemClock
from sparklecomm.logging import configure_logging
from sparklecomm.telephony.server import SipServer, SipServerConfig
from sparklecomm.telephony.sip.digest import InMemoryCredentialStore
from sparklecomm.telephony.sip.location import InMemoryLocationStore, JsonFilePersistence
from sparklecomm.telephony.sip.registrar import RegistrarPolicy
from sparklecomm.telephony.sip.transport import loopback_only


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sparklecomm.telephony")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5060)
    parser.add_argument("--realm", default="sparklecomm")
    parser.add_argument("--user", action="append", default=[], help="name:password")
    parser.add_argument("--algorithm", action="append", help="SHA-256 and/or MD5")
    parser.add_argument("--min-expires", type=int, default=60)
    parser.add_argument("--bindings", type=Path, help="JSON file that keeps bindings")
    parser.add_argument("--loopback-only", action="store_true", help="send only to 127/8, ::1")
    parser.add_argument("--log-level", default="info")
    return parser.parse_args()


async def _serve(args: argparse.Namespace) -> None:
    credentials = InMemoryCredentialStore()
    for entry in args.user:
        name, _, password = entry.partition(":")
        credentials.add_user(name, password, args.realm)
    persistence = JsonFilePersistence(args.bindings) if args.bindings else None
    config = SipServerConfig(
        host=args.host,
        port=args.port,
        realm=args.realm,
        digest_algorithms=tuple(args.algorithm or ("SHA-256", "MD5")),
        registrar=RegistrarPolicy(min_expires=args.min_expires),
        allowed_target=loopback_only if args.loopback_only else None,
    )
    server = SipServer(
        config,
        clock=SystemClock(),
        credentials=credentials,
        locations=InMemoryLocationStore(persistence),
    )
    await server.start()
    print(f"READY {server.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()


def main() -> None:
    args = _arguments()
    configure_logging(args.log_level)
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
