#!/usr/bin/env python3
"""Opens report pages in headless Chromium and checks what a reader would see: no console errors,
every image loaded, every figure (img or inline svg) of non-trivial size.

Usage: check-report-pages.py CHROMIUM PAGE.html [PAGE.html ...]
Prints one line per page (`ok PAGE: N images, M svgs` or `FAIL PAGE: reasons`) and exits 1 if any
page failed. Each page is loaded in an iframe of a small checker page written beside it, whose
script records the iframe's images (naturalWidth) and figure sizes into the DOM once everything has
loaded; Chromium's --dump-dom prints that DOM, and its console log (stderr) is searched for errors.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

CHECKER = """<!DOCTYPE html><html><body><pre id="result">pending</pre>
<iframe id="f" src="%s" style="width:1400px;height:900px"></iframe>
<script>
document.getElementById('f').addEventListener('load', () => {
  const doc = document.getElementById('f').contentDocument;
  const imgs = [...doc.images].map(i => ({src: i.getAttribute('src'), complete: i.complete,
      w: i.naturalWidth, h: i.naturalHeight}));
  const svgs = [...doc.querySelectorAll('svg')].filter(s => !s.parentElement.closest('svg'))
      .map(s => { const r = s.getBoundingClientRect(); return {w: r.width, h: r.height}; });
  document.getElementById('result').textContent = 'RESULT' + JSON.stringify({imgs, svgs}) + 'END';
});
</script></body></html>"""


def check(chromium, page):
    page = os.path.abspath(page)
    folder = os.path.dirname(page)
    checker = os.path.join(folder, ".report-check.html")
    with open(checker, "w") as f:
        f.write(CHECKER % os.path.basename(page))
    try:
        with tempfile.TemporaryDirectory() as profile:
            out = subprocess.run(
                [chromium, "--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync", f"--user-data-dir={profile}",
                 "--allow-file-access-from-files", "--enable-logging=stderr", "--v=0",
                 "--virtual-time-budget=10000", "--dump-dom", "file://" + checker],
                capture_output=True, text=True, timeout=120)
    finally:
        os.remove(checker)
    problems = []
    m = re.search(r"RESULT(.*?)END", out.stdout, re.S)
    if not m:
        return [f"the page did not finish loading (chromium exit {out.returncode}): "
                f"{out.stderr[-2000:]}"], 0, 0
    result = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    for line in out.stderr.splitlines():
        if "CONSOLE" in line and ("ERROR" in line or "Uncaught" in line or "Failed to load" in line):
            problems.append("console: " + line.strip())
    for img in result["imgs"]:
        if not img["complete"] or img["w"] == 0:
            problems.append(f"image {img['src']} did not load")
        elif img["w"] < 100 or img["h"] < 100:
            problems.append(f"image {img['src']} is only {img['w']}x{img['h']}")
    for svg in result["svgs"]:
        if svg["w"] < 100 or svg["h"] < 100:
            problems.append(f"an inline svg is only {svg['w']}x{svg['h']}")
    if not result["imgs"] and not result["svgs"]:
        problems.append("the page has no figures")
    return problems, len(result["imgs"]), len(result["svgs"])


def main():
    chromium, pages = sys.argv[1], sys.argv[2:]
    failed = False
    for page in pages:
        problems, n_img, n_svg = check(chromium, page)
        if problems:
            failed = True
            print(f"FAIL {page}: " + "; ".join(problems))
        else:
            print(f"ok {page}: {n_img} images, {n_svg} svgs")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
