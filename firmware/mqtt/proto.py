# MQTT 3.1.1 packets (OASIS standard, 2014): building and parsing the few the wallbox uses.
# Pure: bytes in, bytes out; no sockets, no clock. The client (firmware/mqtt/client.py) owns
# the connection. Section numbers below are the standard's.

CONNECT = const(0x10)
CONNACK = const(0x20)
PUBLISH = const(0x30)
PUBACK = const(0x40)
SUBSCRIBE = const(0x82)  # 3.8.1: the low nibble is 0b0010
SUBACK = const(0x90)
PINGREQ = const(0xC0)
PINGRESP = const(0xD0)
DISCONNECT = const(0xE0)

_LEVEL = const(4)  # protocol level of 3.1.1 (3.1.2.2)
_MAX_LEN = const(268435455)  # the largest remaining length four bytes can say (2.2.3)

# CONNACK return codes (3.2.2.3), readable
REFUSED = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised",
}


class MqttError(Exception):
    """A malformed packet, a refused connection, a protocol violation by the broker."""


def _str(s):
    b = s.encode() if isinstance(s, str) else bytes(s)
    if len(b) > 65535:
        raise MqttError("string over 65535 bytes")
    return bytes((len(b) >> 8, len(b) & 0xFF)) + b


def varlen(n):
    """The remaining-length field (2.2.3): 7 bits a byte, the high bit says more follow."""
    if not 0 <= n <= _MAX_LEN:
        raise MqttError("packet too long: %d" % n)
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def _packet(first, body):
    return bytes((first,)) + varlen(len(body)) + body


def connect(client_id, keepalive_s, user=None, password=None, will=None, clean=True):
    """CONNECT (3.1). will: (topic, payload, retain) sent by the broker at QoS 1 if the link
    dies without a DISCONNECT."""
    flags = 0x02 if clean else 0
    payload = _str(client_id)
    if will is not None:
        topic, msg, retain = will
        flags |= 0x04 | 0x08 | (0x20 if retain else 0)  # will flag, will QoS 1, retain
        payload += _str(topic) + _str(msg)
    if user is not None:
        flags |= 0x80
        payload += _str(user)
        if password is not None:  # 3.1.2.9: a password only with a user name
            flags |= 0x40
            payload += _str(password)
    head = _str("MQTT") + bytes((_LEVEL, flags, keepalive_s >> 8, keepalive_s & 0xFF))
    return _packet(CONNECT, head + payload)


def publish(topic, payload, retain=False, qos=0, pid=0, dup=False):
    """PUBLISH (3.3); a packet identifier only at QoS 1."""
    first = PUBLISH | (qos << 1) | (0x01 if retain else 0) | (0x08 if dup else 0)
    body = _str(topic)
    if qos:
        body += bytes((pid >> 8, pid & 0xFF))
    if isinstance(payload, str):
        payload = payload.encode()
    return _packet(first, body + payload)


def subscribe(pid, topics):
    """SUBSCRIBE (3.8): topics is a list of (filter, qos)."""
    body = bytes((pid >> 8, pid & 0xFF))
    for t, q in topics:
        body += _str(t) + bytes((q,))
    return _packet(SUBSCRIBE, body)


def puback(pid):
    return bytes((PUBACK, 2, pid >> 8, pid & 0xFF))


PING = b"\xc0\x00"
BYE = b"\xe0\x00"


def connack(body):
    """None when accepted, else why (3.2.2.3)."""
    if len(body) != 2:
        raise MqttError("CONNACK of %d bytes" % len(body))
    rc = body[1]
    if rc == 0:
        return None
    return "broker refused: %s" % REFUSED.get(rc, "code %d" % rc)


def parse_publish(first, body):
    """(topic, payload bytes, qos, pid) of a received PUBLISH body."""
    qos = (first >> 1) & 3
    if qos == 3 or len(body) < 2:
        raise MqttError("bad PUBLISH")
    n = (body[0] << 8) | body[1]
    i = 2 + n
    if i > len(body):
        raise MqttError("PUBLISH topic longer than the packet")
    try:
        topic = str(body[2:i], "utf-8")
    except UnicodeError:
        raise MqttError("PUBLISH topic not UTF-8")
    pid = 0
    if qos:
        if i + 2 > len(body):
            raise MqttError("PUBLISH without its packet identifier")
        pid = (body[i] << 8) | body[i + 1]
        i += 2
    return topic, body[i:], qos, pid
