# The MQTT client (firmware/mqtt/client.py) on the unix port against a real broker, for
# host_tests/test_mqtt.py: micropython mqtt_client_rig.py PORT SECONDS [QMAX [CA [USER PASSWORD]]]
# With CA (a file): TLS, the broker checked against CA as the firmware does. USER and
# PASSWORD: the credentials (a CA of "-" is no TLS). Env RIG_KEEPALIVE: keepalive, s (10).
# Publishes rig/availability "online" (retained) on every connection, rig/count every 100 ms
# (retained), answers a message on rig/<x>/set with rig/echo "<x>:<payload>", and prints
# its info() as JSON at the end.
import asyncio
import json
import os
import sys

from firmware.backoff import Backoff
from firmware.mqtt.client import Client

port = int(sys.argv[1])
seconds = int(sys.argv[2])
qmax = int(sys.argv[3]) if len(sys.argv) > 3 else 24
ssl = None
if len(sys.argv) > 4 and sys.argv[4] != "-":
    from firmware import mqtt

    ssl = mqtt._tls(sys.argv[4], print)


def on_message(topic, payload, retained):
    name = topic.split("/")[1]
    c.publish("rig/echo", name + ":" + str(payload, "utf-8"))


def on_connect():
    c.publish("rig/availability", "online", True)


user = sys.argv[5] if len(sys.argv) > 5 else None
password = sys.argv[6] if len(sys.argv) > 6 else None
keepalive = int(os.getenv("RIG_KEEPALIVE") or 10)
c = Client("127.0.0.1", port, "rig", ssl=ssl, keepalive_s=keepalive, user=user,
           password=password,
           will=("rig/availability", "offline", True),
           subs=[("rig/+/set", 1)], on_message=on_message, on_connect=on_connect,
           queue_max=qmax, backoff=Backoff(200, 1000, seed=1))


async def main():
    asyncio.create_task(c.run())
    for i in range(seconds * 10):
        c.publish("rig/count", str(i), True)
        if qmax < 24:  # the queue bound: many topics while the broker is away
            c.publish("rig/t%d" % (i % 50), str(i))
        await asyncio.sleep_ms(100)
    print(json.dumps(c.info()))


asyncio.run(main())
