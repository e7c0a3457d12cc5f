// The dashboard's entry point: routes the URL's #fragment to a page, and
// gives each page a Screen that stops its refreshing when the page is left.

import { notify, replace } from "./dom.js";
import { failuresPage } from "./failures.js";
import { jobPage } from "./job.js";
import { jobForm } from "./jobform.js";
import { jobsPage } from "./jobs.js";
import { setUpSignIn } from "./signin.js";
import { systemPage } from "./system.js";

// [pattern, show the page on a screen, navigation entry]; the first match wins.
const ROUTES = [
  [/^#\/jobs\/new$/, (screen) => jobForm(screen, null), "jobs"],
  [/^#\/jobs\/([^/]+)\/edit$/, (screen, m) => jobForm(screen, decodeURIComponent(m[1])), "jobs"],
  [/^#\/jobs\/([^/]+)$/, (screen, m) => jobPage(screen, decodeURIComponent(m[1])), "jobs"],
  [/^#\/failures$/, failuresPage, "failures"],
  [/^#\/system$/, systemPage, "system"],
  [/^/, jobsPage, "jobs"],
];

// What a page gets: its root element, and refreshing that ends with it.
export class Screen {
  constructor(root) {
    this.root = root;
    this.closed = false;
    this.timer = null;
  }

  // Run `load` now and again `ms` after each run ends (never two at once).
  every(ms, load) {
    const tick = async () => {
      if (this.closed) return;
      try {
        await load();
      } catch (error) {
        if (!this.closed) notify(error.message, true);
      }
      if (!this.closed) this.timer = setTimeout(tick, ms);
    };
    return tick();
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
  }
}

let current = null;

function route() {
  if (current) current.close();
  const hash = window.location.hash || "#/jobs";
  for (const [pattern, show, nav] of ROUTES) {
    const match = hash.match(pattern);
    if (!match) continue;
    for (const link of document.querySelectorAll("[data-nav]")) {
      link.classList.toggle("active", link.dataset.nav === nav);
    }
    const root = document.getElementById("view");
    replace(root);
    current = new Screen(root);
    Promise.resolve(show(current, match)).catch((error) => notify(error.message, true));
    return;
  }
}

setUpSignIn();
window.addEventListener("hashchange", route);
route();
