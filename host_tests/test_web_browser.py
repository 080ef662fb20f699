"""The web page in a real browser (Debian's headless Chromium through selenium) against the
simulated wallbox: first use sets the password, the status updates live (server-sent events)
while the simulated EV charges, switching to PV mode moves the offer, and the screenshots
the README shows (docs/img/) are taken on the way."""
import os
import shutil

import pytest
import simrig
import webrig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The README's screenshots are rewritten with WB_SCREENSHOTS=1; otherwise they go to build/.
IMG = os.path.join(ROOT, "docs", "img") if os.environ.get("WB_SCREENSHOTS") else os.path.join(
    ROOT, "build", "screenshots")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="Debian's chromium and chromium-driver are not installed (tools/setup.sh installs "
    "them; CI has them)")


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    o = webdriver.ChromeOptions()
    o.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=412,860", "--hide-scrollbars"):
        o.add_argument(a)
    d = webdriver.Chrome(service=Service(DRIVER), options=o)
    yield d
    d.quit()


def _text(d, el_id, want, timeout=10):
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(d, timeout).until(lambda d: want in d.find_element("id", el_id).text)
    return d.find_element("id", el_id).text


def _shot(d, name):
    os.makedirs(IMG, exist_ok=True)
    d.save_screenshot(os.path.join(IMG, name))


def test_first_use_live_status_while_charging_and_pv_mode(browser):
    d = browser
    sim = webrig.start()
    try:
        d.get("http://127.0.0.1:%d/" % sim.http_port)
        _text(d, "setup", "no default password")
        _shot(d, "web-setup.png")
        d.find_element("id", "setup-pw").send_keys("correct horse")
        d.find_element("id", "setup-go").click()
        _text(d, "st-status", "Available")
        assert _text(d, "st-offer", "0 A offered")
        sim.do("ev", max_current_a=32)
        simrig.charge(sim)  # the page is not reloaded: the live stream brings the change
        _text(d, "st-status", "Charging")
        _text(d, "st-offer", "16 A offered")
        assert "config max_current_a" in d.find_element("id", "st-limit").text
        from selenium.webdriver.support.ui import WebDriverWait

        def drawing(d):  # the EV meter's reading: the EV draws what is offered
            t = d.find_element("id", "st-current").text
            return t.endswith("A (highest phase)") and 15 <= float(t.split()[0]) <= 16

        WebDriverWait(d, 10).until(drawing)
        _shot(d, "web-status.png")
        d.find_element("css selector", "#tabs button[data-v=charge]").click()
        _text(d, "mode", "Fast")
        from selenium.webdriver.support.ui import Select

        Select(d.find_element("id", "mode")).select_by_value("pv")
        d.find_element("id", "charge-go").click()
        _text(d, "charge-msg", "Saved")
        _shot(d, "web-charge.png")
        d.find_element("css selector", "#tabs button[data-v=status]").click()
        # no grid meter, so no surplus: the offer follows PV mode down to 0 A
        _text(d, "st-offer", "0 A offered")
        assert "pv" in d.find_element("id", "st-reason").text
        assert d.find_element("id", "st-mode").text.startswith("pv")
        assert sim.state()["offer_da"] == 0
        sim.do("unplug")
        _text(d, "st-session", "no EV")
        d.find_element("css selector", "#tabs button[data-v=sessions]").click()
        assert "Wh" in _text(d, "sess", " min")  # the session just ended, from sessions.json
        d.find_element("css selector", "#tabs button[data-v=diag]").click()
        assert "offer" in _text(d, "diag-text", "status     ")
        errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == [], errors  # no script error on any page
    finally:
        sim.stop()
