# The web page and JSON API on the device (docs/api.md): attach() checks the config's `web`
# section and builds the server the App supervises as its `web` task.


def attach(app, section, log=print):
    """The Server (server.py) for the App `app`, or None when the section is refused."""
    from firmware.web import server

    errors = server.check_section(section)
    for m in errors:
        log("config: %s; the web interface is off" % m)
    if errors:
        return None
    from firmware.web import api, auth

    a = auth.Auth(section.get("session_s", 3600), section.get("installer", True), log)
    srv = server.Server(None, section.get("host", "0.0.0.0"), section.get("port", 80), log)
    api.build(app, a, static_dir(), srv)
    srv.auth = a
    return srv


def static_dir():
    """The pages' folder: beside this module when it was loaded from the filesystem, else
    (a frozen image) the folder `web` of the filesystem."""
    f = globals().get("__file__", "")
    if not f or f.startswith(".frozen"):
        return "web"
    return f.rsplit("/", 1)[0] + "/static"
