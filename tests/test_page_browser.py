"""The page as a newcomer meets it, in a real Chromium: on a 390x844 phone (touch) and a
1280x900 desktop, in light and dark, from a typed question and from a shared link.

The session's server (`conftest.page_server`: the report and a hostile document). These tests
change nothing on it: the upload below is a copy of a document already there.
"""

from __future__ import annotations

import colorsys
import re
import struct
from pathlib import Path

import pytest
from conftest import FIRST_VIEW_S, REPORT, STEP_S, ask, shown_text, wait_for_text
from screenshot import SIZE, take

pytestmark = pytest.mark.browser

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": SIZE}
QUESTION = "What causes chronic mid back pain?"
LINK = "/?q=What+causes+chronic+mid+back+pain%3F"
FIRST = "Severe recurrent pain in the mid back"  # how the first passage begins
# a result card: the bordered block that holds a relevance bar
CARD = ("[data-testid=stVerticalBlock]"
        ":has(> [data-testid=stElementContainer] > [data-testid=stProgress])")


@pytest.fixture
def opened(page_server, browser):
    """Open the page in a new browser context: `opened(link, **context options)`."""
    url, _ = page_server
    contexts = []

    def open_page(link: str = "/", **options):
        context = browser.new_context(**options)
        contexts.append(context)
        page = context.new_page()
        page.goto(url + link)
        page.get_by_label("Your question").wait_for(timeout=FIRST_VIEW_S * 1000)
        return page

    yield open_page
    for context in contexts:
        context.close()


def cards(page):
    """The result cards (not the build's status, which holds a progress bar too)."""
    return page.locator(CARD).filter(has_text="Relevance:")


def first_card(page):
    """The first result card, once its passage shows."""
    wait_for_text(page, FIRST)
    return cards(page).first


def assert_on_screen(page, locator) -> None:
    """The element is wholly inside the viewport, as the page is (not scrolled by the test)."""
    box = locator.bounding_box()
    height = page.viewport_size["height"]
    assert box is not None and 0 <= box["y"] and box["y"] + box["height"] <= height, (box, height)


# --- the answer first --------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["typed", "link"])
def test_on_a_phone_the_first_passage_is_on_screen_after_asking(opened, how):
    if how == "typed":
        page = opened(**PHONE)
        ask(page, QUESTION, FIRST)
    else:
        page = opened(LINK, **PHONE)
    own = ":scope > [data-testid=stElementContainer] [data-testid=stMarkdownContainer]"
    passage = first_card(page).locator(own).filter(has_text=FIRST)  # not the one in context
    assert_on_screen(page, passage)


def test_on_a_desktop_the_whole_first_card_is_on_screen(opened):
    page = opened(LINK, **DESKTOP)
    card = first_card(page)
    assert_on_screen(page, card)
    assert card.bounding_box()["y"] < SIZE["height"] / 2  # in the upper half: met first


def test_examples_are_questions_from_the_corpus(opened):
    page = opened(**PHONE)
    buttons = page.locator("[data-testid=stMain] button").filter(has_text="?")
    labels = [b.inner_text() for b in buttons.all()]
    assert "What causes chronic middle back pain?" in labels  # the heading "... Causes", asked
    assert all(label.endswith("?") for label in labels)
    assert "Chronic Middle Back Pain Causes" not in shown_text(page).split("\n")
    buttons.first.click()
    wait_for_text(page, f"passages for: {labels[0]}")


# --- the cards ---------------------------------------------------------------------------------


def test_a_weak_match_has_nothing_marked(opened):
    page = opened("/?q=how+many+people+actually+have+this%3F", **DESKTOP)  # good, then weak
    page.get_by_text("Relevance: weak match").first.wait_for()
    shown = cards(page).all()
    labels = [re.search(r"Relevance: ([a-z ]+)", c.inner_text()).group(1) for c in shown]
    assert labels[0] in ("good match", "strong match") and "weak match" in labels
    for card, label in zip(shown, labels, strict=True):
        marks = card.locator(".stMarkdownColoredBackground:not(details *)")  # not in context
        assert (marks.count() > 0) == (label != "weak match"), label


def test_copying_works_by_touch_on_a_phone(opened):
    page = opened(LINK, **PHONE, permissions=["clipboard-read", "clipboard-write"])
    card = first_card(page)
    card.get_by_text("Copy text").tap()
    code = card.get_by_test_id("stCode")
    code.wait_for()
    copy = code.get_by_role("button", name="Copy to clipboard")
    assert copy.is_visible()  # no mouse to hover over it
    copy.tap()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith(FIRST) and copied.endswith("chronic-middle-back-pain.txt)")
    below = cards(page).nth(1).bounding_box()
    shown = code.bounding_box()
    assert shown["y"] + shown["height"] <= below["y"]  # in the card, over nothing else


def test_the_closest_passages_can_be_read_in_context(opened):
    page = opened("/?q=What+is+the+capital+of+France%3F", **DESKTOP)
    wait_for_text(page, "The documents do not seem to cover this question.")
    page.get_by_text("Show the closest passages (3)").click()
    contexts = page.get_by_test_id("stExpander").filter(has_text="Show in context")
    contexts.first.wait_for(timeout=STEP_S * 1000)
    assert contexts.count() == 3
    contexts.first.get_by_text("Show in context").click()
    contexts.first.locator("details[open] .stMarkdownColoredBackground").first.wait_for()


# --- colours and themes --------------------------------------------------------------------------

COLOURS = """() => {
    const rgb = (s) => (s.match(/[\\d.]+/g) || []).map(Number).slice(0, 3);
    const box = document.querySelector('[data-testid=stTextInputRootElement]');
    return {
        focus: rgb(getComputedStyle(box).borderTopColor),
        field: rgb(getComputedStyle(box).backgroundColor),
        bar: rgb(getComputedStyle(
            document.querySelector('[data-testid=stProgressBarTrack] > div')).backgroundColor),
        page: rgb(getComputedStyle(document.querySelector('[data-testid=stApp]')).backgroundColor),
    };
}"""


def luminance(rgb: list[float]) -> float:
    """WCAG relative luminance of an sRGB colour (0-255 channels)."""
    def channel(v: float) -> float:
        v /= 255
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: list[float], b: list[float]) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def alarming(rgb: list[float]) -> bool:
    """A saturated red or orange: what reads as an error or a warning."""
    hue, _, saturation = colorsys.rgb_to_hls(*(v / 255 for v in rgb))
    return saturation > 0.3 and (hue < 45 / 360 or hue > 330 / 360)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_focused_box_and_the_bars_are_not_alarm_red(opened, scheme):
    page = opened(LINK, **DESKTOP, color_scheme=scheme)
    first_card(page)
    page.get_by_label("Your question").focus()
    page.wait_for_timeout(300)  # the focus ring's transition
    colours = page.evaluate(COLOURS)
    assert (luminance(colours["page"]) < 0.2) == (scheme == "dark")  # the system's theme
    for part in ("focus", "bar"):
        assert not alarming(colours[part]), (part, colours)
        assert contrast(colours[part], colours["page"]) >= 4.5, (part, colours)
    assert contrast(colours["focus"], colours["field"]) >= 4.5, colours


def test_light_or_dark_follows_the_system_and_can_be_chosen(opened):
    page = opened(**DESKTOP, color_scheme="dark")
    background = "() => getComputedStyle(document.querySelector('[data-testid=stApp]'))" \
                 ".backgroundColor"  # fmt: skip
    rgb = lambda: [float(v) for v in re.findall(r"[\d.]+", page.evaluate(background))[:3]]  # noqa: E731
    assert luminance(rgb()) < 0.2  # the system is dark: so is the page
    assert "Light or dark: the page follows your system" in shown_text(page)
    page.get_by_test_id("stMainMenu").click()
    page.get_by_role("menuitemradio", name="Light").click()
    page.wait_for_function(f"() => ({background})() === 'rgb(255, 255, 255)'")
    assert luminance(rgb()) > 0.8


# --- a shared link with bad values ------------------------------------------------------------


@pytest.mark.parametrize("link,count,said", [
    ("&k=500&mode=foo&docs=nope.md", "20", ["k=500: the most is 20", "mode=foo is no search mode",
                                            "docs=nope.md is no indexed document"]),
    ("&k=0", "1", ["k=0: the fewest is 1 (1 passage shown)"]),
    ("&k=abc", "3", ["k=abc is no number of passages (3 shown)"]),
])  # fmt: skip
def test_a_link_with_bad_values_is_clamped_and_says_so_once(opened, link, count, said):
    page = opened("/?q=back+pain" + link, **DESKTOP)
    wait_for_text(page, "for: back pain")
    wait_for_text(page, "From the link:")
    assert page.get_by_label("Passages").input_value() == count
    text = shown_text(page)
    assert text.count("From the link:") == 1
    assert all(s in text for s in said), text
    if count == "1":
        assert "1 passage for: back pain" in text
    # the link now holds what is shown (the default count is left out of it)
    shown = "" if count == "3" else f"k={count}"
    page.wait_for_function(
        """(shown) => { const p = new URLSearchParams(location.search);
                        return !p.has('mode') && !p.has('docs')
                               && (p.has('k') ? 'k=' + p.get('k') : '') === shown; }""",
        arg=shown, timeout=STEP_S * 1000,
    )  # fmt: skip


# --- notices -------------------------------------------------------------------------------------


def test_dismiss_looks_like_a_button(opened, tmp_path):
    page = opened(**DESKTOP)
    same = tmp_path / REPORT.name
    same.write_bytes(REPORT.read_bytes())  # already there: no document is added
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(same))
    wait_for_text(page, "is already in the documents", FIRST_VIEW_S)
    dismiss = page.get_by_role("button", name="Dismiss")
    border = dismiss.evaluate("e => [getComputedStyle(e).borderTopStyle, "
                              "parseFloat(getComputedStyle(e).borderTopWidth)]")  # fmt: skip
    assert border[0] != "none" and border[1] >= 1, border  # outlined, as the other buttons
    dismiss.click()
    page.wait_for_function("() => !document.body.innerText.includes('already in the documents')")


# --- the README's picture ------------------------------------------------------------------------


def test_the_screenshot_script_takes_the_page_at_desktop_size(page_server, browser, tmp_path):
    url, _ = page_server
    out = tmp_path / "screenshot.png"
    take(browser, url, out)
    data = Path(out).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (SIZE["width"], SIZE["height"])
