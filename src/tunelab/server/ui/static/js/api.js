// The JSON API with the user's key, and the few DOM helpers every page uses.
// Values from the API only ever enter the page as text (el() builds nodes, never HTML strings).

const KEY = "tunelab.apiKey";

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export function getKey() {
  return sessionStorage.getItem(KEY) || "";
}

function headers(extra) {
  const h = new Headers(extra || {});
  const key = getKey();
  if (key) h.set("Authorization", "Bearer " + key);
  return h;
}

let keyWaiters = [];

// The key panel: shown when the server answers 401, with the server's own message.
export function askForKey(message, voluntary = false) {
  const panel = document.getElementById("key-panel");
  const text = document.getElementById("key-message");
  text.textContent = message || "This server needs an API key.";
  text.className = "message" + (getKey() ? " error" : "");
  panel.hidden = false;
  document.getElementById("key-input").focus();
  // Asked for by the user, with no request waiting on a key: Escape may close it (setupKeyForm).
  const optional = voluntary && !keyWaiters.length;
  document.getElementById("key-escape").hidden = !optional;
  return optional ? Promise.resolve() : new Promise((resolve) => keyWaiters.push(resolve));
}

export function setupKeyForm() {
  const form = document.getElementById("key-form");
  const button = document.getElementById("key-button");
  const panel = document.getElementById("key-panel");
  if (document.body.dataset.auth === "key") button.hidden = false;
  button.addEventListener("click", () => askForKey("Enter the API key to use from now on.", true));
  // Opened from the API key button, the panel could only be left by entering a key: Escape now
  // closes it, keeping the key (not when a 401 opened it: a request waits for the key).
  panel.addEventListener("keydown", (ev) => {
    if (ev.key !== "Escape" || document.getElementById("key-escape").hidden) return;
    panel.hidden = true;
    document.getElementById("key-input").value = "";
    button.focus();
  });
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = document.getElementById("key-input");
    sessionStorage.setItem(KEY, input.value.trim());
    input.value = "";
    document.getElementById("key-panel").hidden = true;
    const waiting = keyWaiters;
    keyWaiters = [];
    waiting.forEach((resolve) => resolve());
  });
}

// fetch() against this server; JSON in and out. A 401 asks for the key and tries again.
export async function api(path, { method = "GET", json, form, raw = false } = {}) {
  for (;;) {
    const init = { method, headers: headers(), credentials: "omit", cache: "no-store" };
    if (json !== undefined) {
      init.headers.set("Content-Type", "application/json");
      init.body = JSON.stringify(json);
    } else if (form !== undefined) {
      init.body = form;
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, "The server did not answer (" + err.message + "). Is `tunelab serve` still running?");
    }
    if (response.status === 401) {
      const body = await response.json().catch(() => ({}));
      const msg = (body.error && body.error.message) || "The server needs an API key.";
      await askForKey(getKey() ? "The server refused this key: " + msg : msg);
      continue;
    }
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      const msg = (body.error && body.error.message) || response.status + " " + response.statusText;
      throw new ApiError(response.status, msg, body);
    }
    return raw ? response : response.json();
  }
}

// el("td", {class: "num", title: x}, "text", childNode): text children become text nodes.
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "style") node.style.cssText = value; // CSSOM: allowed by the page's style-src 'self'
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function fill(target, ...children) {
  const node = typeof target === "string" ? document.getElementById(target) : target;
  node.replaceChildren();
  append(node, children);
  return node;
}

export function message(text, kind = "error") {
  return el("div", { class: "message " + kind, role: kind === "error" ? "alert" : "status" }, text);
}

export function status(text) {
  fill("status", text ? message(text, "ok") : null);
}

export function showError(target, err) {
  fill(target, message(err instanceof Error ? err.message : String(err)));
}

// ␣ for spaces at the ends of a label or token, as the CLI prints them; ⏎ for newlines.
export function visible(text) {
  return String(text).replace(/\n/g, "⏎").replace(/^ +| +$/g, (m) => "␣".repeat(m.length));
}

export function fmtTime(seconds) {
  if (!seconds) return "";
  const d = new Date(seconds * 1000);
  return d.toLocaleString(undefined, { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "";
  seconds = Math.max(0, Math.round(seconds));
  if (seconds < 60) return seconds + " s";
  if (seconds < 3600) return Math.floor(seconds / 60) + " min " + (seconds % 60) + " s";
  return Math.floor(seconds / 3600) + " h " + Math.round((seconds % 3600) / 60) + " min";
}

export function fmt(value, digits = 3) {
  if (value === null || value === undefined || value === "") return "–";
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toFixed(digits);
  return String(value);
}

export const TERMINAL = ["succeeded", "failed", "cancelled"];

export function badge(statusText) {
  return el("span", { class: "badge " + statusText }, statusText);
}

// A button that copies `text` and says so.
export function copyButton(text, label = "Copy") {
  const button = el("button", { type: "button", class: "small", "aria-label": label + ": " + text }, label);
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "Copied";
    } catch {
      button.textContent = "Select and copy (Ctrl+C)";
    }
    setTimeout(() => (button.textContent = label), 2000);
  });
  return button;
}

// Options of a <select> from [value, label] pairs, keeping the current choice when it still exists.
export function options(select, pairs, keep = true) {
  const node = typeof select === "string" ? document.getElementById(select) : select;
  const current = node.value;
  node.replaceChildren(...pairs.map(([value, label]) => el("option", { value }, label)));
  if (keep && pairs.some(([value]) => value === current)) node.value = current;
  return node;
}

export async function listAll(path, limit = 100) {
  const out = [];
  let after = null;
  for (let i = 0; i < 50; i++) {
    const page = await api(path + (path.includes("?") ? "&" : "?") + "limit=" + limit + (after ? "&after=" + encodeURIComponent(after) : ""));
    out.push(...page.data);
    if (!page.has_more || !page.data.length) break;
    after = page.data[page.data.length - 1].id;
  }
  return out;
}
