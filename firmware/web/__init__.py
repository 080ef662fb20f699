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
    """The pages' folder: `static` beside this module when it was loaded from the filesystem,
    else (a frozen image: its __file__ is the path inside the image, no such file) the
    filesystem's `web` folder, where make deploy puts them."""
    from os import stat

    f = globals().get("__file__", "")
    if f:
        d = f.rsplit("/", 1)[0] + "/static"
        try:
            stat(d)
            return d
        except OSError:
            pass
    return "web"
