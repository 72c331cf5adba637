// Licentia Administration Console: the shared script of every page.
//
// Console.api(method, path, body) calls the JSON admin API with the page's CSRF value and throws
// Console.ApiError with the API's own message on a refusal. Declarative forms and buttons
// (data-api-method / data-api-path) use it without page code; [data-live] regions and the status
// strip refresh themselves every 2 s. A page's own script registers Console.pages[name] = init,
// run once the page is loaded (name = <body data-page>). See docs/console-dev.md.
(() => {
  "use strict";

  const POLL_MS = 2000;
  const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content ?? "";

  class ApiError extends Error {
    constructor(status, code, message, details = {}) {
      super(message);
      this.status = status;
      this.code = code;
      this.details = details; // the API's whole error object (e.g. a setup refusal's `problems`)
    }
  }

  const Console = {
    csrf: meta("csrf-token"),
    path: meta("console-path"),
    pages: {},
    ApiError,
  };
  window.Console = Console;

  // -- the admin API -------------------------------------------------------------------------

  // timeoutMs: give up on an answer that takes longer (a poll, so that one slow answer cannot stall the next).
  Console.api = async (method, path, body, { raw = false, timeoutMs = 0 } = {}) => {
    const headers = { "X-CSRF-Token": Console.csrf, Accept: "application/json" };
    const init = { method, headers, credentials: "same-origin", redirect: "follow" };
    if (timeoutMs) init.signal = AbortSignal.timeout(timeoutMs);
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = raw ? body : JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch {
      throw new ApiError(0, "network", "The server could not be reached. Check the connection and try again.");
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!response.ok) {
      const error = (data && data.error) || {};
      let message = error.message || `The server answered ${response.status} ${response.statusText}.`;
      if (response.status === 401) message = "Your session has ended. Reload the page and log in again.";
      throw new ApiError(response.status, error.code || `http_${response.status}`, message, error);
    }
    return data;
  };

  // -- messages ------------------------------------------------------------------------------

  // Where to say something about `element`: its form's .form-message, else the one directly inside
  // its closest [data-message-scope], else the page's message line under the heading.
  Console.messageFor = (element) =>
    element?.closest?.("form")?.querySelector(".form-message")
    ?? element?.closest?.("[data-message-scope]")?.querySelector(":scope > .form-message")
    ?? document.getElementById("page-message");

  Console.say = (element, text, kind = "ok") => {
    const box = element?.classList?.contains("form-message") || element?.id === "page-message"
      ? element
      : Console.messageFor(element);
    if (!box) return;
    box.textContent = text;
    box.hidden = false;
    box.classList.toggle("is-error", kind === "error");
    box.classList.toggle("is-ok", kind === "ok");
    box.classList.toggle("message-error", kind === "error" && box.id === "page-message");
    box.classList.toggle("message-ok", kind === "ok" && box.id === "page-message");
    box.setAttribute("role", kind === "error" ? "alert" : "status");
  };

  Console.clear = (element) => {
    const box = Console.messageFor(element);
    if (box) {
      box.hidden = true;
      box.textContent = "";
    }
  };

  // Every message a person reads is a sentence: an API message written as a fragment ("no license X is
  // installed") starts with a capital and ends with a full stop here.
  Console.sentence = (text) => {
    const trimmed = String(text ?? "").trim();
    if (!trimmed) return "Something went wrong; try again.";
    // A first word that is a name (a file, an id: "forged.lic") keeps its case.
    const firstWord = trimmed.split(/\s/, 1)[0];
    const capital = /^[a-z]+[:,]?$/.test(firstWord) ? trimmed.charAt(0).toUpperCase() + trimmed.slice(1) : trimmed;
    return /[.!?…)]$/.test(capital) ? capital : `${capital}.`;
  };

  Console.fail = (element, error) => {
    const text = error instanceof ApiError ? error.message : String(error?.message ?? error);
    Console.say(element, Console.sentence(text), "error");
    // A change a standby member could not carry to the active member: a link to that member's console.
    const consoleUrl = error instanceof ApiError ? error.details?.console_url : undefined;
    const box = element?.classList?.contains("form-message") ? element : Console.messageFor(element);
    if (box && typeof consoleUrl === "string" && /^https?:\/\//.test(consoleUrl)) {
      const link = document.createElement("a");
      link.href = consoleUrl;
      link.textContent = "Open the active member's console";
      box.append(" ", link);
    }
  };

  // Run `action` with `button` marked busy; a refusal is shown next to it.
  Console.busy = async (button, action) => {
    button?.setAttribute("aria-busy", "true");
    if (button) button.disabled = true;
    try {
      return await action();
    } finally {
      button?.removeAttribute("aria-busy");
      if (button) button.disabled = false;
    }
  };

  // -- confirm steps -------------------------------------------------------------------------

  // The console's one kind of "are you sure": an in-page panel after `anchor` (as on the Redundancy
  // page), never a native dialog. Resolves true on the "Yes, …" button, false on Cancel or Esc.
  Console.confirm = (anchor, text, action) => new Promise((resolve) => {
    anchor.parentElement?.querySelector(":scope > .confirm-inline")?.remove();
    const panel = document.createElement("div");
    panel.className = "confirm-inline";
    panel.setAttribute("role", "group");
    panel.setAttribute("aria-label", "Confirm");
    const question = document.createElement("p");
    question.textContent = text;
    question.tabIndex = -1;
    const yes = document.createElement("button");
    yes.type = "button";
    yes.className = "button button-small button-danger";
    const label = (action || anchor.textContent || "Confirm").trim();
    yes.textContent = `Yes, ${label.charAt(0).toLowerCase()}${label.slice(1)}`;
    const no = document.createElement("button");
    no.type = "button";
    no.className = "button button-small";
    no.textContent = "Cancel";
    panel.append(question, yes, no);
    anchor.insertAdjacentElement("afterend", panel);
    const done = (answer) => {
      panel.remove();
      if (!answer) anchor.focus();
      resolve(answer);
    };
    yes.addEventListener("click", (event) => {
      event.stopPropagation();
      done(true);
    });
    no.addEventListener("click", (event) => {
      event.stopPropagation();
      done(false);
    });
    panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        done(false);
      }
    });
    question.focus();
  });

  // -- time ----------------------------------------------------------------------------------

  Console.localizeTimes = (root = document) => {
    for (const time of root.querySelectorAll("time[datetime]")) {
      const when = new Date(time.getAttribute("datetime"));
      if (Number.isNaN(when.getTime())) continue;
      time.title = time.title || time.textContent;
      time.textContent = "clock" in time.dataset ? when.toLocaleTimeString()
        : when.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
    }
  };

  // -- live regions --------------------------------------------------------------------------

  // Fetch the region's block of this page (?fragment=NAME) and swap it in. Polls skip a region the
  // user is working in (focus or an edited form inside); `force` swaps anyway (after a change).
  const shown = new Map(); // region name -> the HTML last swapped in

  Console.refresh = async (name, { force = true } = {}) => {
    const region = document.querySelector(`[data-live="${name}"]`);
    if (!region) return;
    const url = new URL(window.location.href);
    url.searchParams.set("fragment", name);
    let response;
    try {
      response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
    } catch {
      return;
    }
    if (response.redirected || response.status === 401) {
      window.location.reload();
      return;
    }
    if (!response.ok) return;
    const html = await response.text();
    if (html === shown.get(name)) return;
    const focusInside = region.contains(document.activeElement) && document.activeElement !== region;
    if (!force && (focusInside || region.querySelector("form[data-dirty]"))) return;
    shown.set(name, html);
    region.innerHTML = html;
    Console.localizeTimes(region);
    if (focusInside) region.focus();
    region.dispatchEvent(new CustomEvent("console:refreshed", { bubbles: true }));
  };

  const pollRegions = () => {
    for (const region of document.querySelectorAll("[data-live]")) {
      Console.refresh(region.dataset.live, { force: false });
    }
  };

  // -- status strip --------------------------------------------------------------------------

  // The strip polls every second; an answer slower than STATUS_TIMEOUT_MS counts as a lost connection.
  const STATUS_POLL_MS = 1000;
  const STATUS_TIMEOUT_MS = 3000;
  let statusSent = 0;
  let statusShown = 0;

  const pollStatus = async () => {
    const strip = document.getElementById("status-strip");
    if (!strip) return;
    const field = (name) => strip.querySelector(`[data-status="${name}"]`);
    const sequence = ++statusSent;
    let status;
    try {
      const response = await fetch(strip.dataset.statusUrl,
        { credentials: "same-origin", cache: "no-store", signal: AbortSignal.timeout(STATUS_TIMEOUT_MS) });
      if (response.status === 401) {
        window.location.reload();
        return;
      }
      if (!response.ok) throw new Error(String(response.status));
      status = await response.json();
    } catch {
      if (sequence < statusShown) return;
      strip.classList.add("offline");
      field("offline").hidden = false;
      const active = field("active");
      active.textContent = "Not known";
      active.className = "pill pill-neutral";
      active.title = "The console cannot reach this server, so its state is not known.";
      return;
    }
    if (sequence < statusShown) return; // an answer older than one already shown
    statusShown = sequence;
    strip.classList.remove("offline");
    field("offline").hidden = true;
    field("server").textContent = status.server;
    field("relationship").textContent = status.role ? `${status.relationship} · ${status.role}` : status.relationship;
    const active = field("active");
    active.textContent = status.standing;
    active.className = `pill pill-${status.standing_kind}`;
    active.removeAttribute("title");
    const counts = { ok: "OK", grace: "in grace", bad: "expired or exhausted" };
    for (const [name, label] of Object.entries(counts)) {
      const pill = field(name);
      pill.textContent = `${status.licenses[name]} ${label}`;
      pill.classList.toggle("pill-zero", status.licenses[name] === 0);
    }
    const at = new Date(status.at * 1000);
    const time = document.createElement("time");
    time.dateTime = at.toISOString();
    time.dataset.clock = "";
    time.textContent = at.toLocaleTimeString();
    field("at").replaceChildren(time);
  };
  Console.pollStatus = pollStatus;

  // -- declarative forms and buttons ---------------------------------------------------------

  // "/api/v1/admin/users/{username}" with values: each {name} is replaced (URL-encoded).
  Console.fillPath = (template, values) =>
    template.replace(/\{(\w+)\}/g, (_, name) => encodeURIComponent(values[name] ?? ""));
  const fillText = (template, values) => template.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));

  // The JSON body of a form: named fields, numbers for data-type="number", booleans for checkboxes;
  // fields named in the path and fields marked data-skip are left out, empty data-optional ones too.
  Console.formBody = (form, pathTemplate = "") => {
    const inPath = new Set([...pathTemplate.matchAll(/\{(\w+)\}/g)].map((m) => m[1]));
    const body = {};
    const values = {};
    for (const element of form.elements) {
      if (!element.name || element.disabled) continue;
      let value;
      if (element.type === "checkbox") value = element.checked;
      else if (element.type === "file") continue;
      else value = element.value;
      if (element.dataset.type === "number" && value !== "") value = Number(value);
      values[element.name] = value;
      if (inPath.has(element.name) || "skip" in element.dataset) continue;
      if ("optional" in element.dataset && value === "") continue;
      body[element.name] = value;
    }
    return { body, values };
  };

  // After a change: data-after="reload" | "refresh:NAME[,NAME]" | "navigate:URL" (default: reload).
  Console.after = async (how, element) => {
    how = how || "reload";
    pollStatus();
    if (how === "reload") {
      window.location.reload();
    } else if (how.startsWith("navigate:")) {
      window.location.assign(how.slice("navigate:".length));
    } else if (how.startsWith("refresh:")) {
      await Promise.all(how.slice("refresh:".length).split(",").map((name) => Console.refresh(name.trim())));
    }
  };

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.apiMethod) return;
    event.preventDefault();
    const button = event.submitter ?? form.querySelector("button[type=submit]");
    Console.clear(form);
    if (form.dataset.confirm && !(await Console.confirm(button ?? form, form.dataset.confirm))) return;
    const { body, values } = Console.formBody(form, form.dataset.apiPath);
    await Console.busy(button, async () => {
      try {
        await Console.api(form.dataset.apiMethod, Console.fillPath(form.dataset.apiPath, values),
          form.dataset.apiMethod === "DELETE" ? undefined : body);
      } catch (error) {
        Console.fail(form, error);
        return;
      }
      delete form.dataset.dirty;
      if (form.dataset.success) Console.say(form, fillText(form.dataset.success, values));
      if (form.dataset.reset !== undefined) form.reset();
      await Console.after(form.dataset.after, form);
    });
  });

  document.addEventListener("input", (event) => {
    const form = event.target.closest?.("form");
    if (form) form.dataset.dirty = "1";
  });

  document.addEventListener("click", async (event) => {
    const button = event.target.closest?.("button[data-api-method]");
    if (!button || button.form?.dataset.apiMethod) return;
    event.preventDefault();
    if (button.dataset.confirm && !(await Console.confirm(button, button.dataset.confirm))) return;
    const scope = button.closest("[data-message-scope]") ?? button;
    Console.clear(scope);
    await Console.busy(button, async () => {
      try {
        await Console.api(button.dataset.apiMethod, button.dataset.apiPath);
      } catch (error) {
        Console.fail(scope, error);
        return;
      }
      if (button.dataset.success) Console.say(scope, button.dataset.success);
      await Console.after(button.dataset.after, button);
    });
  });

  // -- start ---------------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    Console.localizeTimes();
    const init = Console.pages[document.body.dataset.page];
    if (init) init(document);
    if (document.getElementById("status-strip")) {
      window.setInterval(() => {
        if (!document.hidden) pollRegions();
      }, POLL_MS);
      window.setInterval(() => {
        if (!document.hidden) pollStatus();
      }, STATUS_POLL_MS);
    }
  });
})();
