"""A real headless Chromium for the website's tests, driven by Selenium through Debian's chromedriver.

Nothing is downloaded: the driver and the browser are the system's (``chromium`` and
``chromium-driver``; .ci/run installs them), passed to Selenium by path, and Selenium Manager is told
to stay offline.  The reactor runs the cluster in the main thread, so every Selenium call runs in a
thread (``in_thread``), and every wait is a WebDriverWait with a bound: nothing sleeps.
"""

import os

from twisted.internet import threads

from tests.conftest import bounded

CHROMIUM = os.environ.get("PAPERTRADER_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("PAPERTRADER_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
#: Seconds a page may take to show what a test waits for.
PAGE_WAIT = 20
SCREENSHOTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "test-artifacts",
                           "screenshots")
DESKTOP = (1280, 800)
PHONE = (390, 844)


def check_installed():
    """Fail (not skip: the suite needs them) with what to install when the browser or its driver is missing."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            raise AssertionError(f"{path} is missing: install Debian's {package} (apt-get install chromium"
                                 " chromium-driver; .ci/run does), or set PAPERTRADER_TEST_CHROMIUM and"
                                 " PAPERTRADER_TEST_CHROMEDRIVER")


def in_thread(function, *args, what="the browser", timeout=PAGE_WAIT + 10, **kwargs):
    """Run a blocking Selenium call in a thread while the reactor runs; its result, within a bound."""
    return bounded(threads.deferToThread(function, *args, **kwargs), what, timeout)


def _start():
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not fetch a browser or a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--no-first-run", "--disable-extensions", "--hide-scrollbars", "--lang=en-US",
                     f"--window-size={DESKTOP[0]},{DESKTOP[1]}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(PAGE_WAIT)
    driver.set_script_timeout(PAGE_WAIT)
    return driver


class Browser:
    """One headless Chromium; every method is a coroutine (the Selenium work runs in a thread)."""

    def __init__(self, driver, base):
        self.driver = driver
        self.base = base
        self.shots = []

    @classmethod
    async def start(cls, base):
        check_installed()
        driver = await in_thread(_start, what="chromium to start", timeout=60)
        return cls(driver, base)

    async def close(self):
        await in_thread(self.driver.quit, what="chromium to quit")

    def run(self, function, *args, what="the browser"):
        return in_thread(function, *args, what=what)

    async def open(self, path):
        await self.run(self.driver.get, self.base + path, what=f"{path} to load")

    async def wait(self, condition, what, timeout=PAGE_WAIT):
        """Until ``condition(driver)`` is true (its value), at most ``timeout`` seconds."""
        from selenium.common.exceptions import (ElementClickInterceptedException, NoSuchElementException,
                                                StaleElementReferenceException, TimeoutException,
                                                WebDriverException)
        from selenium.webdriver.support.ui import WebDriverWait

        def tolerant(driver):
            try:
                return condition(driver)
            except WebDriverException as e:
                # An element replaced by a live update between finding and using it: Chromium says so in
                # words, not always as a stale reference.  That too is "not yet".
                if "does not belong to the document" in str(e):
                    return False
                raise

        def waiting():
            try:
                # A page being replaced by the next one makes elements stale: that is "not yet".
                return WebDriverWait(self.driver, timeout, poll_frequency=0.05, ignored_exceptions=(
                    NoSuchElementException, StaleElementReferenceException,
                    ElementClickInterceptedException)).until(tolerant)
            except TimeoutException:
                raise AssertionError(f"waited {timeout} s for {what}; at {self.driver.current_url}:\n"
                                     f"{self.driver.find_element('tag name', 'body').text[:2000]}")

        return await in_thread(waiting, what=what, timeout=timeout + 10)

    async def wait_text(self, css, text, timeout=PAGE_WAIT):
        """Until the element ``css`` contains ``text``; returns the element's text."""
        def found(driver):
            for element in driver.find_elements("css selector", css):
                if text in element.text:
                    return element.text
            return False

        return await self.wait(found, f"{text!r} in {css}", timeout)

    async def page(self, name):
        """Until the page ``name`` (body[data-page]) is shown."""
        await self.wait(lambda d: d.find_element("tag name", "body").get_attribute("data-page") == name,
                        f"the {name} page")

    async def live(self):
        """Until the page's live connection is subscribed (its WebSocket said 'ready')."""
        await self.wait(lambda d: d.find_element("tag name", "body").get_attribute("data-live-state") == "ready",
                        "the page's live connection")

    async def fill(self, fields):
        def filling():
            for css, value in fields.items():
                element = self.driver.find_element("css selector", css)
                if element.tag_name == "select":
                    from selenium.webdriver.support.ui import Select

                    Select(element).select_by_value(value)
                elif element.get_attribute("type") in ("radio", "checkbox"):
                    if element.is_selected() != bool(value):
                        self.driver.execute_script("arguments[0].click()", element)
                elif element.get_attribute("type") == "date":  # typing a date depends on the browser's locale
                    self.driver.execute_script("arguments[0].value = arguments[1]", element, value)
                else:
                    element.clear()
                    element.send_keys(value)

        await self.run(filling, what="filling a form")

    async def click(self, css):
        """Click ``css`` once it is there (a live update may replace it meanwhile: then the new one)."""
        def clicked(driver):
            driver.find_element("css selector", css).click()
            return True

        await self.wait(clicked, f"{css} to click")

    async def text(self, css):
        # (A one-item list is true even when the text is empty; a stale element is read again.)
        [value] = await self.wait(lambda d: [d.find_element("css selector", css).text], f"the text of {css}")
        return value

    async def attribute(self, css, name):
        [value] = await self.wait(lambda d: [d.find_element("css selector", css).get_attribute(name)],
                                  f"{css}[{name}]")
        return value

    async def script(self, source, *args):
        return await self.run(self.driver.execute_script, source, *args, what="a script")

    async def cookies(self):
        return await self.run(self.driver.get_cookies, what="the cookies")

    async def console(self):
        return await self.run(self.driver.get_log, "browser", what="the console")

    async def screenshots(self, name):
        """The whole page at desktop and phone widths, saved under test-artifacts/screenshots/."""
        os.makedirs(SCREENSHOTS, exist_ok=True)

        def shoot():
            saved = []
            # The highlight of values that just changed has faded.
            self.driver.execute_async_script(
                "const done = arguments[0];"
                " Promise.all(document.getAnimations().map((a) => a.finished)).then(() => done(), () => done());")
            for label, (width, height) in (("desktop", DESKTOP), ("phone", PHONE)):
                self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", dict(
                    width=width, height=height, deviceScaleFactor=1, mobile=label == "phone"))
                # Two animation frames: the layout and the charts (a ResizeObserver) have followed the size.
                self.driver.execute_async_script(
                    "const done = arguments[0]; requestAnimationFrame(() => requestAnimationFrame(done));")
                if label == "desktop":  # a label's or a script's element is never ambiguous
                    twice = self.driver.execute_script(
                        "const seen = new Set(), twice = [];"
                        " for (const e of document.querySelectorAll('[id]')) {"
                        "   if (seen.has(e.id)) twice.push(e.id); seen.add(e.id); }"
                        " return twice;")
                    assert not twice, f"{name}: ids used twice: {twice}"
                if label == "phone":
                    # Nothing wider than the screen, and every tab of the navigation in sight.
                    wide, hidden = self.driver.execute_script(
                        "const tabs = document.querySelector('nav.tabs .wrap');"
                        " return [document.documentElement.scrollWidth,"
                        " tabs ? tabs.scrollWidth - tabs.clientWidth : 0];")
                    assert wide <= width, f"{name}: the page is {wide} px wide on a {width} px phone"
                    assert hidden <= 0, f"{name}: {hidden} px of the navigation's tabs are out of sight on a phone"
                size = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
                clip = dict(x=0, y=0, width=width, height=max(height, int(size["height"])), scale=1)
                data = self.driver.execute_cdp_cmd("Page.captureScreenshot", dict(
                    format="png", captureBeyondViewport=True, clip=clip))
                path = os.path.join(SCREENSHOTS, f"{name}-{label}.png")
                import base64

                with open(path, "wb") as f:
                    f.write(base64.b64decode(data["data"]))
                saved.append(path)
            self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
            self.driver.execute_async_script(
                "const done = arguments[0]; requestAnimationFrame(() => requestAnimationFrame(done));")
            return saved

        saved = await in_thread(shoot, what=f"screenshots of {name}")
        self.shots.extend(saved)
        return saved

