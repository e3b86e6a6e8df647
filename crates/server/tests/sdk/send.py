"""Sends the audience events of scenario.json through the official Segment Python SDK.

    python send.py --host http://127.0.0.1:8080 --write-key KEY [--gzip] [--scenario FILE]

Host and write key may also come from SEGMENT_HOST and SEGMENT_WRITE_KEY. Each event is shaped
as Segment Engage sends it to a destination: an identify with the audience key as a boolean trait
and the email in traits, or an "Audience Entered"/"Audience Exited" track with the audience key
as a boolean property and the email in context.traits; both name the audience in
context.personas. Event i carries the time base + i seconds, so the order is the scenario's order
whatever batches the SDK makes. A step's name is an identify's trait name.

Prints one JSON line per event ({"step", "messageId"}) on stdout. Exits 1 if the SDK reported
any error (its on_error callback), if an event could not be queued, or on bad input.
"""

import argparse
import json
import logging
import os
import sys
from datetime import datetime, timedelta, timezone

import segment.analytics as analytics


def engage_context(audience):
    return {
        "personas": {
            "computation_key": audience,
            "computation_class": "audience",
            "computation_id": "aud_" + audience,
            "space_id": "spa_sdk_test",
            "namespace": "spa:spa_sdk_test",
        }
    }


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("SEGMENT_HOST"))
    parser.add_argument("--write-key", default=os.environ.get("SEGMENT_WRITE_KEY"))
    parser.add_argument("--gzip", action="store_true", help="gzip request bodies")
    parser.add_argument("--scenario", default=os.path.join(here, "scenario.json"))
    parser.add_argument("--debug", action="store_true", help="the SDK's debug log on stderr")
    args = parser.parse_args()
    if not args.host or not args.write_key:
        parser.error("--host and --write-key (or SEGMENT_HOST and SEGMENT_WRITE_KEY) are required")

    with open(args.scenario, encoding="utf-8") as f:
        steps = json.load(f)["steps"]

    errors = []

    def on_error(error, batch):
        # Called from the SDK's consumer thread once a batch is given up.
        errors.append("%s (batch of %d)" % (error, len(batch)))

    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    client = analytics.Client(
        write_key=args.write_key,
        host=args.host,
        gzip=args.gzip,
        on_error=on_error,
        debug=args.debug,
        # Small batches, sent quickly: several requests per run.
        upload_size=4,
        upload_interval=0.05,
        # Few retries, so a failing service fails the run within the test's timeout.
        max_retries=3,
        max_total_backoff_duration=30,
        max_rate_limit_duration=30,
        timeout=10,
    )

    base = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=len(steps) + 60)
    queued_all = True
    for i, step in enumerate(steps):
        audience, member, email = step["audience"], bool(step["member"]), step["email"]
        when = base + timedelta(seconds=i)
        if step["call"] == "identify":
            traits = {audience: member, "email": email}
            if "name" in step:
                # May hold a lone surrogate: json.dumps writes it as a \u escape.
                traits["name"] = step["name"]
            ok, msg = client.identify(
                user_id=step["user"],
                traits=traits,
                context=engage_context(audience),
                timestamp=when,
            )
        elif step["call"] == "track":
            context = engage_context(audience)
            context["traits"] = {"email": email}
            ok, msg = client.track(
                user_id=step["user"],
                event="Audience Entered" if member else "Audience Exited",
                properties={audience: member, "audience_key": audience},
                context=context,
                timestamp=when,
            )
        else:
            print("step %d: unknown call %r" % (i, step["call"]), file=sys.stderr)
            return 1
        if not ok:
            print("step %d: the SDK did not queue the event" % i, file=sys.stderr)
            queued_all = False
        print(json.dumps({"step": i, "messageId": msg["messageId"]}), flush=True)

    client.flush()
    client.shutdown()

    for e in errors:
        print("SDK error: " + e, file=sys.stderr)
    if errors or not queued_all:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
