#!/usr/bin/env python3
"""A device's life through Cumulocity's Python client (PyPI `c8y-api`, REST only):

    python c8y_device_flow.py --url http://127.0.0.1:PORT [--host NAME] --tenant T
        --user device_<serial> --password P [--name NAME] [--measurements N] [--events N]
        [--timeout-ms T]

It creates its device (a managed object with c8y_IsDevice), sends N measurements and N
events from it, then looks for the device's PENDING operations (the query c8y-api pages
with currentPage until an empty page) until one shows up, and walks the first through
EXECUTING to SUCCESSFUL. Each step is one JSON line on stdout:

    {"step": "device", "id": "..."}              (create the operation for it now)
    {"step": "measurement", "id": "..."}         (N lines)
    {"step": "event", "id": "..."}               (N lines)
    {"step": "pending", "ids": ["..."]}
    {"step": "operation", "id": "...", "status": "EXECUTING"}
    {"step": "operation", "id": "...", "status": "SUCCESSFUL"}

Exits 0 after the last; 1 with a message on stderr on an error or when the time runs out.
"""

import argparse
import json
import sys
import time
from datetime import datetime, timezone

import requests
from c8y_api import CumulocityApi, HttpError
from c8y_api.model import Celsius, Device, Event, Measurement

#: Most PENDING operations read in one look. A server that ignored `currentPage` would hand
#: c8y-api the same page forever; this bound turns that into an error instead of a hang.
MOST_PENDING = 1000


def fail(text):
    print(f"{sys.argv[0]}: {text}", file=sys.stderr)
    sys.exit(1)


def say(**fields):
    print(json.dumps(fields), flush=True)


def parse_options(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:PORT")
    parser.add_argument("--host", help="Host header to send instead of the URL's")
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--name", default="c8y-api test device")
    parser.add_argument("--measurements", type=int, default=3)
    parser.add_argument("--events", type=int, default=2)
    parser.add_argument("--timeout-ms", type=int, default=30000)
    options = parser.parse_args(argv)
    if options.measurements < 0 or options.events < 0 or options.timeout_ms < 1:
        parser.error("--measurements and --events must not be negative, --timeout-ms positive")
    return options


def pending_operations(c8y, device_id):
    """The device's PENDING operations, paged by c8y-api; an error on a repeated id."""
    seen = []
    for operation in c8y.operations.select(agent_id=device_id, status="PENDING", limit=MOST_PENDING):
        if operation.id in seen:
            fail(f"operation {operation.id} came twice: the server does not page with currentPage")
        seen.append(operation.id)
    if len(seen) == MOST_PENDING:
        fail(f"more than {MOST_PENDING} PENDING operations: the server may ignore currentPage")
    return seen


def run(options):
    deadline = time.monotonic() + options.timeout_ms / 1000
    c8y = CumulocityApi(options.url, options.tenant, options.user, options.password)
    if options.host:
        c8y.session.headers["Host"] = options.host

    device = Device(c8y, type="portico_TestDevice", name=options.name,
                    c8y_SupportedOperations=["c8y_Restart"]).create()
    say(step="device", id=device.id)

    now = lambda: datetime.now(timezone.utc)  # noqa: E731
    for k in range(options.measurements):
        measurement = Measurement(c8y, type="c8y_Temperature", source=device.id, time=now(),
                                  c8y_Temperature={"T": Celsius(20.0 + k)}).create()
        say(step="measurement", id=measurement.id)
    for k in range(options.events):
        event = Event(c8y, type="c8y_TestEvent", time=now(), source=device.id,
                      text=f"test event {k + 1}").create()
        say(step="event", id=event.id)

    while True:
        pending = pending_operations(c8y, device.id)
        if pending:
            break
        if time.monotonic() > deadline:
            fail(f"no PENDING operation for device {device.id} within {options.timeout_ms} ms")
        time.sleep(0.5)
    say(step="pending", ids=pending)

    operation = c8y.operations.get(pending[0])
    for status in ("EXECUTING", "SUCCESSFUL"):
        operation.status = status
        operation = operation.update()
        if operation.status != status:
            fail(f"operation {operation.id} is {operation.status} after setting {status}")
        say(step="operation", id=operation.id, status=operation.status)


def main():
    options = parse_options(sys.argv[1:])
    try:
        run(options)
    except requests.ConnectionError as error:
        fail(f"cannot reach {options.url}: {error}")
    except HttpError as error:
        fail(f"the server refused a request: {error!r}")
    except (requests.RequestException, KeyError, ValueError) as error:
        fail(f"{type(error).__name__}: {error}")


if __name__ == "__main__":
    main()
