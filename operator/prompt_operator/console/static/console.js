// prompt console: progressive enhancement only. Every page works without it;
// with it the list updates live (server-sent events), the preview renders as
// you type, and the edit form checks as you type. No library, no build step.
"use strict";

(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";

  function debounce(fn, ms) {
    let timer = null;
    return function (...args) {
      clearTimeout(timer);
      timer = setTimeout(() => fn.apply(this, args), ms);
    };
  }

  // -- the list: live rows from a watch ------------------------------------------------
  const table = document.querySelector("table[data-stream]");
  if (table && window.EventSource) {
    const body = table.querySelector("[data-rows]");
    const status = document.querySelector("[data-live-status]");
    const source = new EventSource(table.dataset.stream);
    const say = (text, live) => {
      if (!status) return;
      status.textContent = text;
      status.classList.toggle("on", live);
    };
    source.addEventListener("open", () => say("Live", true));
    source.addEventListener("error", () => {
      // CLOSED: the console refused the stream (too many live views, no session).
      if (source.readyState === EventSource.CLOSED) say("Live updates off: reload to retry", false);
      else say("Reconnecting…", false);
    });
    source.addEventListener("rows", (event) => {
      // Server-rendered, escaped HTML for the same filter the page shows.
      body.innerHTML = event.data;
      say("Live", true);
      table.dataset.updated = String(Date.now());
    });
  }

  // -- the Prompt page: preview as you type ---------------------------------------------
  const preview = document.querySelector("form[data-preview]");
  if (preview) {
    const out = document.querySelector("[data-preview-output]");
    const update = debounce(async () => {
      const query = new URLSearchParams(new FormData(preview));
      const response = await fetch(preview.dataset.preview + "?" + query, {
        headers: { Accept: "text/html" },
      });
      if (response.ok) out.innerHTML = await response.text();
    }, 150);
    preview.addEventListener("input", update);
    preview.addEventListener("submit", (event) => {
      event.preventDefault();
      update();
    });
  }

  // -- the edit form: the same checks as `prompt-operator validate`, as you type ---------
  const form = document.querySelector("form[data-checks]");
  if (form) {
    const status = form.querySelector("[data-checks-status]");
    const warnings = form.querySelector("[data-warnings]");
    const fieldInputs = {
      key: [form.querySelector("#key")],
      format: [form.querySelector("#format")],
      template: [form.querySelector("#template"), ...form.querySelectorAll("[name=variant_template]")],
      variants: [...form.querySelectorAll("[name=variant_weight]")],
      variables: [...form.querySelectorAll("[name=var_name]")],
    };
    const paragraphs = (messages, cls) =>
      messages.map((m) => {
        const p = document.createElement("p");
        p.className = cls;
        p.textContent = m;
        return p;
      });
    const check = debounce(async () => {
      const response = await fetch(form.dataset.checks, {
        method: "POST",
        body: new FormData(form),
        headers: { "X-CSRF-Token": csrf, Accept: "application/json" },
      });
      if (!response.ok) return;
      const result = await response.json();
      let problems = 0;
      for (const box of form.querySelectorAll("[data-errors-for]")) {
        const messages = result.errors[box.dataset.errorsFor] || [];
        problems += messages.length;
        box.replaceChildren(...paragraphs(messages, "error"));
        for (const input of fieldInputs[box.dataset.errorsFor] || []) {
          if (!input) continue;
          if (messages.length) input.setAttribute("aria-invalid", "true");
          else input.removeAttribute("aria-invalid");
        }
      }
      warnings.replaceChildren(...paragraphs(result.warnings || [], "warning"));
      status.textContent = problems
        ? "Fix the problems marked above before saving."
        : "All checks pass.";
      form.dataset.checked = String(Date.now());
    }, 250);
    form.addEventListener("input", check);

    // One empty variable row is always there; this adds another.
    const add = form.querySelector("[data-add-variable]");
    const rows = form.querySelector("[data-var-rows]");
    if (add && rows) {
      add.hidden = false;
      add.addEventListener("click", () => {
        const template = rows.querySelector("[data-var-row]:last-child");
        const copy = template.cloneNode(true);
        const n = rows.children.length;
        for (const input of copy.querySelectorAll("input")) {
          input.value = "";
          input.id = input.id.replace(/-\d+$/, "-" + n);
        }
        for (const label of copy.querySelectorAll("label")) {
          label.htmlFor = label.htmlFor.replace(/-\d+$/, "-" + n);
        }
        rows.appendChild(copy);
        copy.querySelector("input").focus();
      });
    }
  }
})();
