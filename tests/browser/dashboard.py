"""The creators' dashboard in a real browser (Debian's Chromium, driven by Playwright).

Run by tests/insights.rs against a read API it filled through the broker and the jobs:

    python tests/browser/dashboard.py --base URL --token T --first FROM:TO --second FROM:TO --out DIR

Signs in through the form, reads the tiles and the top-posts table and checks them against
/v1/insights, switches the range and checks the URL and the numbers follow, goes back, downloads
the CSV and checks it is the table, saves light and dark screenshots, and signs out. Exits
non-zero with the reason on the first difference.
"""

import argparse
import csv
import io
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

from playwright.sync_api import sync_playwright

CHROMIUM = os.environ.get("APERTURE_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
EXACT = [
    "views",
    "interactions",
    "likes",
    "comments",
    "shares",
    "saves",
    "profile_visits",
    "follows",
    "unfollows",
    "net_follows",
    "watch_ms",
]


def fail(message):
    print(f"dashboard: {message}", file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def api(base, token, path):
    request = urllib.request.Request(base + path, headers={"authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=20) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def click_and_wait(page, selector):
    """Clicks what navigates and waits for the page it leads to."""
    with page.expect_navigation():
        page.click(selector)


def query(span):
    start, end = span.split(":")
    return f"range=custom&from={start}&to={end}"


def tiles(page):
    out = {}
    for tile in page.locator(".tile").all():
        out[tile.get_attribute("data-metric")] = float(
            tile.locator(".value").get_attribute("data-value")
        )
    return out


def table(page, selector):
    rows = []
    for tr in page.locator(f"{selector} tbody tr").all():
        rows.append([c.inner_text().strip() for c in tr.locator("th, td").all()])
    return rows


def check_against_api(page, base, token, q, what):
    status, want = api(base, token, f"/v1/insights?{q}&sort=views")
    check(status == 200, f"{what}: /v1/insights answered {status}: {want}")
    got = tiles(page)
    for field in EXACT:
        check(
            got[field] == want["totals"][field],
            f"{what}: tile {field} shows {got[field]}, the API says {want['totals'][field]}",
        )
    for field in ["reach", "accounts_engaged"]:
        check(
            got[field] == want["totals"][field]["value"],
            f"{what}: tile {field} shows {got[field]}, the API says {want['totals'][field]}",
        )
    surfaces = table(page, "#surfaces")
    views = sum(int(r[1].replace(",", "")) for r in surfaces if len(r) == 4)
    check(
        views == want["totals"]["views"],
        f"{what}: the views by surface add up to {views}, not {want['totals']['views']}",
    )
    shown = [int(r[0]) for r in table(page, "#top-posts") if r[0].isdigit()]
    check(
        shown == [p["post_id"] for p in want["top_posts"]],
        f"{what}: top posts {shown}, the API's {[p['post_id'] for p in want['top_posts']]}",
    )
    days = table(page, "#daily")
    check(len(days) == len(want["daily"]), f"{what}: {len(days)} daily rows")
    for row, day in zip(days, want["daily"]):
        check(row[0].startswith(day["day"]), f"{what}: row {row[0]} for {day['day']}")
        check(int(row[1]) == day["views"], f"{what}: {day['day']} views {row[1]}")
    return want


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--base", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--other-token", required=True, help="another creator's token")
    p.add_argument("--first", required=True, help="FROM:TO of the first range")
    p.add_argument("--second", required=True, help="FROM:TO of the range switched to")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    base, first, second = a.base, query(a.first), query(a.second)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
        page = context.new_page()
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))

        # Not signed in: the page sends us to the form, and the form back to it.
        page.goto(f"{base}/dashboard?{first}&sort=views")
        check("/login" in page.url, f"without a session the page is {page.url}")
        page.fill("#token", a.token)
        click_and_wait(page, "button[type=submit]")
        check(
            page.url == f"{base}/dashboard?{first}&sort=views",
            f"signed in to {page.url}: {page.content()[:400]}",
        )
        check(
            context.cookies()[0]["httpOnly"] and page.evaluate("document.cookie") == "",
            "the session cookie is HttpOnly: no script reads it",
        )
        check(
            page.evaluate("window.localStorage.length") == 0,
            "nothing is kept in localStorage",
        )
        one = check_against_api(page, base, a.token, first, "first range")
        page.wait_for_selector("#charts canvas")
        charts = page.locator("#charts figure").count()
        metrics = page.locator("#daily thead th").count() - 1
        check(
            charts == metrics and metrics >= 12,
            f"{charts} daily charts drawn for the table's {metrics} metrics",
        )
        page.screenshot(path=os.path.join(a.out, "dashboard-light.png"), full_page=True)
        light_bg = page.evaluate("getComputedStyle(document.body).backgroundColor")

        # The CSV is the table the page shows.
        with page.expect_download() as download:
            page.click("#top-posts caption a")
        rows = list(csv.reader(io.StringIO(open(download.value.path(), encoding="utf-8").read())))
        shown = table(page, "#top-posts")
        header = [h.inner_text().strip() for h in page.locator("#top-posts thead th").all()]
        check(rows[0] == header, f"CSV header {rows[0]} vs the table's {header}")
        body = [r for r in shown if len(r) == len(header)]
        check(rows[1:] == body, f"the CSV's {len(rows) - 1} rows are not the table's {len(body)}")
        with page.expect_download() as download:
            page.click("#daily caption a")
        daily = list(csv.reader(io.StringIO(open(download.value.path(), encoding="utf-8").read())))
        check(len(daily) == 1 + len(one["daily"]), "the daily CSV has one row per day")

        # Another range through the form: the URL carries it, the numbers follow it.
        start, end = a.second.split(":")
        page.fill("input[name=from]", start)
        page.fill("input[name=to]", end)
        click_and_wait(page, "form.custom button[type=submit]")
        check(f"from={start}" in page.url and f"to={end}" in page.url, f"switched to {page.url}")
        two = check_against_api(page, base, a.token, second, "second range")
        check(
            two["totals"]["views"] != one["totals"]["views"],
            "the two ranges were chosen to differ in views",
        )
        # Sorting is in the URL too.
        click_and_wait(page, "a[href*='sort=interactions']")
        check("sort=interactions" in page.url, f"sorted: {page.url}")
        values = [int(r[5]) for r in table(page, "#top-posts") if r[0].isdigit()]
        check(values == sorted(values, reverse=True), f"by interactions: {values}")
        # Back twice: the first range again, with its numbers.
        page.go_back()
        page.go_back()
        page.wait_for_load_state("load")
        check(page.url == f"{base}/dashboard?{first}&sort=views", f"back to {page.url}")
        check(tiles(page)["views"] == one["totals"]["views"], "back shows the first range's views")

        page.emulate_media(color_scheme="dark")
        dark_bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
        check(dark_bg != light_bg, f"dark mode changes the background ({light_bg} → {dark_bg})")
        page.screenshot(path=os.path.join(a.out, "dashboard-dark.png"), full_page=True)

        # Another creator's post insights: 403.
        post = one["top_posts"][0]["post_id"] if one["top_posts"] else None
        if post is not None:
            status, _ = api(base, a.other_token, f"/v1/insights/posts/{post}")
            check(status in (403, 404), f"another creator's post insights answered {status}")
            status, _ = api(base, a.token, f"/v1/insights/posts/{post}")
            check(status == 200, f"the author's own post insights answered {status}")

        check(not errors, f"the page logged errors (a CSP violation would show here): {errors}")

        # Signing out: the dashboard asks to sign in again.
        click_and_wait(page, "form.logout button")
        check("/login" in page.url, f"after signing out: {page.url}")
        page.goto(f"{base}/dashboard?{first}")
        check("/login" in page.url, f"the dashboard after signing out: {page.url}")
        browser.close()
    print(f"dashboard: checked in Chromium; screenshots in {a.out}")


if __name__ == "__main__":
    main()
