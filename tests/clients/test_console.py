"""The web console (/ui on --admin-listen), driven in headless Chromium.

A user's path through it, against the real broker and real clients: create
a topic in the page and see it listed, produce with confluent-kafka and
browse the records in the page (key, value, headers), see a consumer
group's lag fall when a consumer commits, and produce from the page. Keys
and values are user data: a record whose value is a <script> or an <img
onerror> is shown as text and nothing runs. With --admin-read-only the JSON
API refuses writes (403) and the page shows no write controls.

Screenshots go to $CORELOG_ARTIFACTS/console when that is set, else under
the test's tmp_path (kept when the test fails).

Chromium and chromedriver are Debian's (chromium, chromium-driver), Selenium
is PyPI's; ci/install-client-deps.sh installs them.
"""
import base64
import http.client
import json
import os
import pathlib
import shutil
import time

import pytest

from conftest import free_port, produce_all, require_or_skip, unique_topic

CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# How long the page may take to draw a view.
VIEW_TIMEOUT_S = 15


def _http(port, method, path, body=None, content_type="application/json"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        conn.request(method, path, body=data, headers=headers)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


@pytest.fixture
def artifacts(request, tmp_path):
    base = os.environ.get("CORELOG_ARTIFACTS")
    d = pathlib.Path(base) / "console" if base else tmp_path / "screenshots"
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture
def browser(artifacts):
    try:
        import selenium  # noqa: F401
        have = os.path.exists(CHROMEDRIVER) and os.path.exists(CHROMIUM)
    except ImportError:
        have = False
    require_or_skip(have, "chromium, chromium-driver or selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1400,1000", "--no-first-run", "--disable-extensions"):
        opts.add_argument(a)
    # The browser logs (console errors, CSP reports) come back to the test.
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    d.set_page_load_timeout(VIEW_TIMEOUT_S)
    try:
        yield d
    finally:
        d.quit()


@pytest.fixture
def console_broker(broker_factory):
    def start(*extra):
        port = free_port()
        b = broker_factory(["--admin-listen", "127.0.0.1:%d" % port, "--cores", "2", *extra])
        b.admin_port = port
        b.ui = "http://127.0.0.1:%d/ui" % port
        return b
    return start


def _open(d, url):
    """Loads `url` and waits for its view: a hash change on the page that is
    open draws the view again (the render count moves), a new page draws
    it once."""
    same_page = d.current_url.split("#")[0] == url.split("#")[0]
    before = d.execute_script("return document.body.dataset.renders") if same_page else None
    d.get(url)
    if same_page:
        _wait_render(d, before)
    else:
        _wait(d, lambda: d.execute_script("return document.body.dataset.renders") is not None)


def _wait_render(d, before):
    _wait(d, lambda: d.execute_script("return document.body.dataset.renders") not in (None, before))


def _wait(d, cond, what="condition", timeout=VIEW_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except Exception as e:  # an element between two renders
            last = e
        time.sleep(0.05)
    raise AssertionError("timed out waiting for %s (last error %r); status: %r"
                         % (what, last, d.find_element("id", "status").text))


def _click_and_wait(d, by, value):
    before = d.execute_script("return document.body.dataset.renders")
    d.find_element(by, value).click()
    _wait_render(d, before)


def _status(d):
    return d.find_element("id", "status").text


def _shot(d, artifacts, name):
    d.save_screenshot(str(artifacts / ("%s.png" % name)))


def _severe_logs(d):
    return [e for e in d.get_log("browser") if e.get("level") == "SEVERE"]


def test_console_topics_messages_groups_and_escaping(console_broker, browser, artifacts):
    from confluent_kafka import Consumer, TopicPartition
    from selenium.webdriver.common.by import By
    b = console_broker()
    d = browser

    # The page and its API carry the security headers; the page loads no
    # inline script (the policy would refuse it).
    status, headers, body = _http(b.admin_port, "GET", "/ui")
    assert status == 200 and b"<script src=\"/ui/app.js\"" in body
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"

    # The topic list opens with the cluster: one broker, ready.
    _open(d, b.ui)
    assert d.find_element(By.ID, "cluster-health").text.startswith("Ready: 1 broker(s), 2 shard(s)")
    broker_row = d.find_elements(By.CSS_SELECTOR, "#brokers tbody tr td")
    assert [x.text for x in broker_row] == ["1", "127.0.0.1", str(b.port), "", "yes"]

    # Create a topic in the page: it is listed.
    topic = unique_topic("console")
    d.find_element(By.ID, "new-topic-name").send_keys(topic)
    parts = d.find_element(By.ID, "new-topic-partitions")
    parts.clear()
    parts.send_keys("2")
    _click_and_wait(d, By.ID, "create-topic")
    assert "Created topic " + topic in _status(d)
    row = d.find_element(By.CSS_SELECTOR, "#topics tbody tr[data-topic='%s']" % topic)
    assert row.find_elements(By.TAG_NAME, "td")[1].text == "2"
    _shot(d, artifacts, "01-topic-created")

    # Produce with a real client: plain, JSON, binary, and markup that
    # would run if the page put it into the DOM as HTML.
    xss_script = "<script>window.__xss_script = 1</script>"
    xss_img = "<img src=x onerror=\"window.__xss_img = 1\">"
    messages = [
        {"key": b"k-text", "value": b"hello console", "partition": 0,
         "headers": [("trace", b"abc"), ("<b>h</b>", b"<i>v</i>")]},
        {"key": b"k-json", "value": b'{"b": [1, 2], "a": "x"}', "partition": 0},
        {"key": b"\x00\xff", "value": b"\x01\x02\xfe\xff", "partition": 0},
        {"key": xss_img.encode(), "value": xss_script.encode(), "partition": 0},
        {"key": b"k5", "value": xss_img.encode(), "partition": 0},
    ] + [{"key": b"n%d" % i, "value": b"v%d" % i, "partition": 0} for i in range(5)]
    produce_all(b.bootstrap, topic, messages, acks="all")

    # Browse partition 0 from the start in the page.
    _open(d, "%s#/messages/%s/0" % (b.ui, topic))
    _wait(d, lambda: len(d.find_elements(By.CSS_SELECTOR, "#records tbody tr")) == len(messages),
          "the produced records listed")
    rows = d.find_elements(By.CSS_SELECTOR, "#records tbody tr")
    cells = lambda r: r.find_elements(By.TAG_NAME, "td")  # noqa: E731
    c0 = cells(rows[0])
    assert c0[0].text == "0"
    assert c0[2].text == "k-text" and c0[3].text == "hello console"
    assert "trace: abc" in c0[4].text and "<b>h</b>: <i>v</i>" in c0[4].text
    # JSON is pretty-printed; bytes that are not UTF-8 are shown in hex.
    assert cells(rows[1])[3].text == '{\n  "b": [\n    1,\n    2\n  ],\n  "a": "x"\n}'
    assert cells(rows[2])[2].text == "00 ff" and cells(rows[2])[3].text == "01 02 fe ff"
    # The markup is shown as text, exactly, and nothing ran.
    assert cells(rows[3])[3].text == xss_script
    assert cells(rows[3])[2].text == xss_img
    assert cells(rows[4])[3].text == xss_img
    assert d.execute_script("return [typeof window.__xss_script, typeof window.__xss_img]") == \
        ["undefined", "undefined"]
    assert d.find_elements(By.CSS_SELECTOR, "#records img, #records script, #records b, #records i") == []
    _shot(d, artifacts, "02-browse")

    # From an offset, in hex.
    _open(d, "%s#/messages/%s/0?from=offset&offset=7&format=hex" % (b.ui, topic))
    _wait(d, lambda: [r.get_attribute("data-offset") for r in d.find_elements(By.CSS_SELECTOR, "#records tbody tr")]
          == ["7", "8", "9"], "records from offset 7")
    assert cells(d.find_elements(By.CSS_SELECTOR, "#records tbody tr")[0])[3].text == "76 32"
    # From a timestamp: one in the future finds nothing, the epoch all.
    future = int(time.time() * 1000) + 3_600_000
    _open(d, "%s#/messages/%s/0?from=timestamp&timestamp=%d" % (b.ui, topic, future))
    _wait(d, lambda: d.find_element(By.ID, "browse-summary").text.startswith("0 records"), "an empty browse")
    _open(d, "%s#/messages/%s/0?from=timestamp&timestamp=1970-01-01T00:00:00Z&limit=3" % (b.ui, topic))
    _wait(d, lambda: len(d.find_elements(By.CSS_SELECTOR, "#records tbody tr")) == 3, "3 records from the epoch")

    # A consumer group (whose id is markup too) commits offset 4 of 10:
    # the page shows its member, the assignment and lag 6, then lag 0 once
    # it commits the end.
    group = "<img src=x onerror=\"window.__xss_group = 1\">-" + unique_topic("g")
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + 30
        while not c.assignment() and time.monotonic() < deadline:
            c.poll(0.2)
        assert len(c.assignment()) == 2, c.assignment()
        c.commit(offsets=[TopicPartition(topic, 0, 4)], asynchronous=False)
        _open(d, "%s#/groups" % b.ui)
        _wait(d, lambda: [r.text for r in d.find_elements(By.CSS_SELECTOR, "#groups tbody tr td:first-child")]
              == [group], "the group listed, its id as text")
        d.find_element(By.LINK_TEXT, group).click()
        lag = lambda: d.find_element(  # noqa: E731
            By.CSS_SELECTOR, "#offsets tbody tr[data-topic='%s'][data-partition='0'] td.lag" % topic).text
        _wait(d, lambda: lag() == "6", "lag 6")
        assert d.find_element(By.ID, "group-id").text == group
        member = d.find_elements(By.CSS_SELECTOR, "#members tbody tr")
        assert len(member) == 1 and cells(member[0])[3].text == topic + ": 0, 1"
        # Partition 1 is assigned but has no committed offset: no lag.
        p1 = d.find_element(By.CSS_SELECTOR, "#offsets tbody tr[data-topic='%s'][data-partition='1']" % topic)
        assert [x.text for x in cells(p1)[2:]] == ["null", "0", ""]
        _shot(d, artifacts, "03-group-lag-6")
        c.commit(offsets=[TopicPartition(topic, 0, len(messages))], asynchronous=False)
        d.refresh()
        _wait(d, lambda: lag() == "0", "lag 0 after the commit")
        assert d.find_element(By.ID, "group-total-lag").text == "0"
        assert d.execute_script("return typeof window.__xss_group") == "undefined"
        _shot(d, artifacts, "04-group-lag-0")
    finally:
        c.close()

    # Produce a test message from the page, then see it in the topic.
    _open(d, "%s#/topic/%s" % (b.ui, topic))
    d.find_element(By.CSS_SELECTOR, "#produce-partition option[value='1']").click()
    d.find_element(By.ID, "produce-key").send_keys("from-ui")
    d.find_element(By.ID, "produce-value").send_keys('{"made": "in the console"}')
    d.find_element(By.ID, "produce-headers").send_keys("source=console")
    d.find_element(By.ID, "produce-send").click()
    _wait(d, lambda: "Produced to partition 1 at offset 0" in _status(d), "the produce acknowledged")
    _open(d, "%s#/messages/%s/1" % (b.ui, topic))
    _wait(d, lambda: len(d.find_elements(By.CSS_SELECTOR, "#records tbody tr")) == 1, "the UI's record")
    r = cells(d.find_elements(By.CSS_SELECTOR, "#records tbody tr")[0])
    assert r[2].text == "from-ui" and '"made": "in the console"' in r[3].text and "source: console" in r[4].text

    # The charts draw from /metrics.
    _open(d, "%s#/charts" % b.ui)
    _wait(d, lambda: d.find_elements(By.CSS_SELECTOR, "#chart-records polyline")
          and d.find_elements(By.CSS_SELECTOR, "#chart-latency polyline")
          and d.find_elements(By.CSS_SELECTOR, "#chart-produce polyline")
          and d.find_elements(By.CSS_SELECTOR, "#chart-sync polyline"), "the charts drawn")
    _shot(d, artifacts, "05-charts")

    # Delete the topic from the page.
    _open(d, b.ui)
    row = d.find_element(By.CSS_SELECTOR, "#topics tbody tr[data-topic='%s']" % topic)
    d.execute_script("window.confirm = () => true")
    before = d.execute_script("return document.body.dataset.renders")
    row.find_element(By.CSS_SELECTOR, "button.delete-topic").click()
    _wait_render(d, before)
    _wait(d, lambda: not d.find_elements(By.CSS_SELECTOR, "#topics tbody tr[data-topic='%s']" % topic),
          "the topic gone")
    assert "Deleted topic " + topic in _status(d)
    assert _severe_logs(d) == [], _severe_logs(d)


def test_console_api_refuses_bad_input(console_broker):
    b = console_broker()
    port = b.admin_port
    topic = unique_topic("console-api")
    assert _http(port, "POST", "/api/topics", {"name": topic, "partitions": 1})[0] == 200
    for method, path, body, want in [
        ("GET", "/api/messages?topic=%s&limit=501" % topic, None, 400),
        ("GET", "/api/messages?topic=%s&offset=-1" % topic, None, 400),
        ("GET", "/api/messages?topic=%s&partition=7" % topic, None, 404),
        ("GET", "/api/messages?partition=0", None, 400),
        ("GET", "/api/topic?name=%25zz", None, 400),
        ("GET", "/api/topic?name=no-such-topic", None, 404),
        ("POST", "/api/topics", {"name": topic}, 400),  # exists
        ("POST", "/api/topics", {"name": "x", "partitions": 0}, 400),
        ("POST", "/api/topics", {"name": "x", "configs": {"no.such.config": "1"}}, 400),
        ("POST", "/api/messages", {"value": "no topic"}, 400),
        ("PUT", "/api/topics", None, 405),
        ("GET", "/api/nope", None, 404),
    ]:
        status, headers, answer = _http(port, method, path, body)
        assert status == want, (method, path, body, status, answer)
        if status != 405:
            assert json.loads(answer)["error"], answer
    # Compressed batches are read with the broker's codecs.
    produce_all(b.bootstrap, topic, [{"value": b"zstd %d" % i, "partition": 0} for i in range(3)],
                compression_type="zstd", linger_ms=50)
    status, _, answer = _http(port, "GET", "/api/messages?topic=%s&partition=0&limit=2" % topic)
    records = json.loads(answer)["records"]
    assert status == 200 and [base64.b64decode(r["value"]) for r in records] == [b"zstd 0", b"zstd 1"]
    # A browse returns at most 500 records, and says where the next starts.
    produce_all(b.bootstrap, topic, [{"value": b"r%d" % i, "partition": 0} for i in range(600)])
    status, _, answer = _http(port, "GET", "/api/messages?topic=%s&partition=0&offset=1&limit=500" % topic)
    page = json.loads(answer)
    assert status == 200 and len(page["records"]) == 500, (status, len(page["records"]))
    assert page["records"][0]["offset"] == 1 and page["next_offset"] == 501 and page["high_watermark"] == 603
    # A POST must say it is JSON (a cross-site form cannot).
    assert _http(port, "POST", "/api/topics", {"name": "y"}, content_type="text/plain")[0] == 415
    # A body over the bound is refused unread.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest("POST", "/api/messages")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(2 << 20))
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()
    assert b.alive()


def test_console_read_only_refuses_writes_and_hides_them(console_broker, browser, artifacts):
    from selenium.webdriver.common.by import By
    # A topic to look at, made while the broker still allowed writes.
    b = console_broker()
    topic = unique_topic("console-ro")
    assert _http(b.admin_port, "POST", "/api/topics", {"name": topic, "partitions": 1})[0] == 200
    # The same broker (data, ports) restarted read-only.
    b.terminate()
    b.extra_args.append("--admin-read-only")
    b.start()
    b2 = b
    port = b2.admin_port
    for method, path, body in [
        ("POST", "/api/topics", {"name": "refused"}),
        ("DELETE", "/api/topic?name=%s" % topic, None),
        ("POST", "/api/messages", {"topic": topic, "value": "refused"}),
    ]:
        status, _, answer = _http(port, method, path, body)
        assert status == 403 and "read-only" in json.loads(answer)["error"], (method, path, status, answer)
    # Reads still work, and the topic is still there.
    status, _, answer = _http(port, "GET", "/api/topics")
    assert status == 200 and topic in [t["name"] for t in json.loads(answer)["topics"]]

    d = browser
    _open(d, b2.ui)
    _wait(d, lambda: d.find_elements(By.CSS_SELECTOR, "#topics tbody tr[data-topic='%s']" % topic), "the topic")
    assert d.find_element(By.ID, "mode").text == "read-only"
    for css in ("#create-topic-form", "#create-topic", "button.delete-topic"):
        for e in d.find_elements(By.CSS_SELECTOR, css):
            assert not e.is_displayed(), css
    assert not d.find_element(By.ID, "create-topic").is_enabled()
    _open(d, "%s#/topic/%s" % (b2.ui, topic))
    _wait(d, lambda: d.find_element(By.ID, "topic-name").text == topic, "the topic page")
    assert not d.find_element(By.ID, "produce-form").is_displayed()
    assert not d.find_element(By.ID, "produce-send").is_enabled()
    _shot(d, artifacts, "06-read-only")
