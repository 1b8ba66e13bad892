// Playground: POST /v1/completions with logprobs (and /v1/labels/score when a classifier has more
// labels than the 20 that logprobs can return), the answer coloured token by token, and the
// first-token distribution as bars.
import { api, el, fill, options, showError, visible } from "./api.js";

const MAX_LOGPROBS = 20;
let models = {};
const separators = {};

function pct(p) {
  return (100 * p).toFixed(p >= 0.001 ? 1 : 3) + " %";
}

function bars(entries, id) {
  // entries: [[token, logprob]] from the API, shown most probable first.
  const sorted = [...entries].sort((a, b) => b[1] - a[1]);
  return el("div", { class: "bars", id, role: "list" }, sorted.map(([token, lp], i) => {
    const p = Math.exp(lp);
    return el("div", { class: "bar-row" + (i === 0 ? " top" : ""), role: "listitem", style: "display:contents",
                       dataset: { token, logprob: String(lp), p: String(p) } },
      el("span", { class: "label", title: JSON.stringify(token) }, visible(token)),
      el("span", { class: "bar", "aria-hidden": "true" }, el("span", { style: `width:${(100 * p).toFixed(2)}%` })),
      el("span", { class: "pct", title: `logprob ${lp}` }, pct(p)));
  }));
}

function alternatives(top) {
  return Object.entries(top || {}).sort((a, b) => b[1] - a[1]).map(([t, lp]) => `${visible(t)} ${pct(Math.exp(lp))}`).join(" · ");
}

function tokens(lp) {
  return el("div", { class: "tokens", id: "answer-tokens" }, lp.tokens.map((t, i) => {
    const p = Math.exp(lp.token_logprobs[i]);
    const alts = alternatives(lp.top_logprobs[i]);
    return el("span", { class: "tok", tabindex: 0, title: `${pct(p)} — ${alts}`, "aria-label": `${visible(t)}: ${pct(p)}; alternatives ${alts}`,
                        style: `background: hsla(${Math.round(120 * p)}, 75%, 45%, 0.35)`, dataset: { p: String(p) } }, visible(t));
  }));
}

async function loadModels() {
  const list = (await api("/v1/models")).data;
  models = Object.fromEntries(list.map((m) => [m.id, m]));
  const tuned = list.filter((m) => m.kind === "fine-tuned");
  const base = list.filter((m) => m.kind === "base" && m.status !== "missing");
  const select = options("play-model", [...tuned, ...base].map((m) => [m.id, m.id + (m.labels ? ` (${m.labels.length} labels)` : "")]));
  const wanted = new URLSearchParams(location.search).get("model");
  if (wanted && models[wanted]) select.value = wanted;
  await onModel();
}

async function onModel() {
  const id = document.getElementById("play-model").value;
  if (!id) return;
  // The choice in the address, so that a reload, back/forward or a shared link keeps it (a reload
  // went back to the first model or to the one of the link the page was opened with).
  history.replaceState(history.state, "", `?${new URLSearchParams({ model: id })}`);
  if (!(id in separators)) {
    separators[id] = models[id] && models[id].kind === "fine-tuned"
      ? (await api(`/ui/api/separator?model=${encodeURIComponent(id)}`).catch(() => ({}))).separator || "" : "";
  }
  const sep = separators[id];
  const box = document.getElementById("add-separator");
  box.disabled = !sep;
  fill("separator-shown", sep ? JSON.stringify(sep).slice(1, -1) : "(none known)");
  const labels = models[id] && models[id].labels;
  if (labels) document.getElementById("max-tokens").value = 1;
}

async function submit(ev) {
  ev.preventDefault();
  const id = document.getElementById("play-model").value;
  const text = document.getElementById("play-prompt").value;
  const sep = separators[id] || "";
  const prompt = document.getElementById("add-separator").checked && sep && !text.endsWith(sep) ? text + sep : text;
  const labels = (models[id] && models[id].labels) || null;
  const button = document.getElementById("play-submit");
  button.disabled = true;
  fill("answer", el("p", { class: "muted" }, "Asking the model…"));
  try {
    const body = {
      model: id, prompt,
      max_tokens: labels ? 1 : Math.max(1, Number(document.getElementById("max-tokens").value) || 1),
      temperature: Number(document.getElementById("temperature").value) || 0,
      logprobs: labels ? Math.min(MAX_LOGPROBS, labels.length) : 5,
    };
    const res = await api("/v1/completions", { method: "POST", json: body });
    const choice = res.choices[0];
    const lp = choice.logprobs;
    let first = Object.entries((lp && lp.top_logprobs[0]) || {});
    let source = `top_logprobs of /v1/completions (logprobs=${body.logprobs})`;
    if (labels && labels.length > MAX_LOGPROBS) {
      // The same prediction as the completion above, which the prediction log already holds: not logged twice.
      const scored = await api("/v1/labels/score", { method: "POST", json: { model: id, prompt, store: false } });
      first = Object.entries(scored.data[0].logprobs);
      source = "every label, from /v1/labels/score (the same numbers as top_logprobs)";
    }
    fill("answer",
      el("h3", {}, "Prompt sent"),
      el("div", { class: "prompt-echo mono", id: "prompt-echo" }, prompt),
      el("h3", {}, labels ? "Predicted label" : "Completion"),
      lp ? tokens(lp) : el("div", { class: "tokens" }, visible(choice.text)),
      el("h3", {}, labels ? `Label distribution (${first.length} labels)` : "First-token distribution (top 5)"),
      bars(first, "first-token"),
      el("p", { class: "muted" }, el("small", {}, `From ${source}; ${res.usage.prompt_tokens} prompt tokens. Response ${res.id}.`)));
  } catch (err) {
    showError("answer", err);
  } finally {
    button.disabled = false;
  }
}

export async function playgroundPage() {
  document.getElementById("play-model").addEventListener("change", () => onModel().catch((err) => showError("answer", err)));
  document.getElementById("play-form").addEventListener("submit", submit);
  document.getElementById("play-prompt").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) document.getElementById("play-form").requestSubmit();
  });
  try { await loadModels(); } catch (err) { showError("answer", err); }
}
