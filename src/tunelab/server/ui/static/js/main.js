// Entry point: the key form, then the page's own module.
import { setupKeyForm } from "./api.js";
import { jobPage, jobsPage } from "./jobs.js";
import { modelsPage } from "./models.js";
import { monitorPage } from "./monitor.js";
import { newPage } from "./new.js";
import { playgroundPage } from "./playground.js";

const PAGES = { jobs: jobsPage, job: jobPage, new: newPage, models: modelsPage, playground: playgroundPage, monitor: monitorPage };

setupKeyForm();
const page = PAGES[document.body.dataset.page];
if (page) {
  page().finally(() => document.body.setAttribute("data-ready", "1"));
} else {
  document.body.setAttribute("data-ready", "1"); // a page in words only (not found)
}
