# MQTT for the owner and Home Assistant (docs/mqtt.md). Loaded only when the config has an
# "mqtt" section: start(app) checks it, builds the bridge (bridge.py) on the owner model and
# the board's network, and adds its two supervised tasks.


def start(app, log=print):
    """The Bridge, its tasks added to app.sup; None (and why, logged) when the section is bad
    or there is no owner model."""
    from firmware.mqtt import conf

    s, errors = conf.check(app.cfg.mqtt)
    for msg in errors:
        log("config: " + msg + "; MQTT off")
    if errors:
        return None
    owner = getattr(app, "owner", None)
    if owner is None:
        log("mqtt: no owner model; MQTT off")
        return None
    ssl = None
    if s["tls"]:
        ssl = _tls(s["ca"], log)
        if ssl is None:
            return None
    net = app.board.net
    if callable(net):
        net = net(app.cfg.network or {})
    from firmware import version
    from firmware.mqtt.bridge import Bridge

    c = app.cfg
    max_a = min(c.rating_a or 6, c.max_current_a)
    dev = {"name": "Wallbox " + s["node_id"], "model": app.board.name,
           "sw_version": version.VERSION}
    b = Bridge(s, owner, max_a, dev, log, net=net, ssl=ssl)
    for name, factory in b.tasks():
        app.sup.add(name, factory)
    return b


def _tls(path, log):
    """The broker's TLS context, checked as the CSMS link's (firmware/ocpp/ws.py: the CA
    given, the chain and the host name verified, TLS 1.2 or later)."""
    from firmware.ocpp.security import SecurityError, _read
    from firmware.ocpp.ws import WsError, _tls_context

    try:
        return _tls_context(_read(path, "mqtt.ca"))
    except (SecurityError, WsError) as e:
        log("mqtt: %s; MQTT off" % (e,))
        return None
