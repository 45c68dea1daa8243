#!/usr/bin/env python3
"""aiocometd (PyPI `aiocometd-noloop`, the maintained fork of aiocometd 0.4.5, which is broken
on Python 3.10 and later) subscribed to one channel over long-polling:

    python aiocometd_client.py --url http://127.0.0.1:PORT/notification/operations
        [--host NAME] [--transport long-polling] --channel /<deviceId>
        --token <base64 tenant/user:password> --count N --timeout-ms T

Prints {"channel", "data"} as one JSON line per message received on the channel and exits 0
after N of them; exits 1 with a message on stderr on an error or when the time runs out.
The token goes in ext["com.cumulocity.authn"] of every outgoing message and as an
`Authorization: Basic` header.
"""

import argparse
import asyncio
import json
import sys

from aiocometd_noloop import Client, ConnectionType
from aiocometd_noloop.exceptions import AiocometdException
from aiocometd_noloop.extensions import AuthExtension


class CumulocityAuth(AuthExtension):
    """Cumulocity's Bayeux authentication: the token in every message's ext, and headers."""

    def __init__(self, token, host):
        self.token = token
        self.host = host

    async def outgoing(self, payload, headers):
        for message in payload:
            ext = message.setdefault("ext", {})
            ext["com.cumulocity.authn"] = {"token": self.token}
        headers["Authorization"] = f"Basic {self.token}"
        if self.host:
            headers["Host"] = self.host

    async def incoming(self, payload, headers=None):
        pass

    async def authenticate(self):
        # Static credentials: nothing to refresh; a refused handshake ends the client.
        pass


def parse_options(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--host")
    parser.add_argument("--transport", default="long-polling", choices=["long-polling"])
    parser.add_argument("--channel", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--timeout-ms", type=int, default=30000)
    options = parser.parse_args(argv)
    if not options.channel.startswith("/") or "/" in options.channel[1:] or "*" in options.channel:
        parser.error(f"--channel must be /<id>, not {options.channel}")
    if options.count < 1 or options.timeout_ms < 1:
        parser.error("--count and --timeout-ms must be positive")
    return options


def quiet_about_cancelled(loop, context):
    # Leaving the client cancels its held connect, which aiocometd's callback then reports as
    # an error; that is the normal end here, not news.
    if isinstance(context.get("exception"), asyncio.CancelledError):
        return
    loop.default_exception_handler(context)


async def receive(options):
    asyncio.get_running_loop().set_exception_handler(quiet_about_cancelled)
    auth = CumulocityAuth(options.token, options.host)
    async with Client(options.url, ConnectionType.LONG_POLLING, auth=auth) as client:
        await client.subscribe(options.channel)
        print(f"subscribed to {options.channel} over long-polling", file=sys.stderr)
        received = 0
        async for message in client:
            if message.get("channel") != options.channel:
                continue
            print(json.dumps({"channel": message["channel"], "data": message.get("data")}), flush=True)
            received += 1
            if received == options.count:
                return


def main():
    options = parse_options(sys.argv[1:])
    try:
        asyncio.run(asyncio.wait_for(receive(options), options.timeout_ms / 1000))
    except asyncio.TimeoutError:
        print(f"{sys.argv[0]}: timed out after {options.timeout_ms} ms", file=sys.stderr)
        sys.exit(1)
    except (AiocometdException, OSError) as error:
        print(f"{sys.argv[0]}: {type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
