// medcoder workspace: the pages' behaviour. Plain JavaScript, no libraries, nothing loaded from elsewhere.
// Data from the server is put on the page with textContent only: a note or a reason is never parsed as HTML.
"use strict";

const csrf = () => document.body.dataset.csrf;

async function api(method, path, body) {
  const opts = {method, headers: {"X-CSRF-Token": csrf(), "Accept": "application/json"}, credentials: "same-origin"};
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(path, opts);
  let data = null;
  try { data = await res.json(); } catch (e) { data = null; }
  if (!res.ok) {
    const err = new Error((data && data.detail && (typeof data.detail === "string" ? data.detail
      : JSON.stringify(data.detail))) || res.statusText);
    err.status = res.status;
    throw err;
  }
  return data;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  return node;
}

// -- progress (worklist and waiting page): poll each item being coded ------------------------------------
function watchProgress() {
  const boxes = Array.from(document.querySelectorAll("[data-progress]"));
  if (!boxes.length) return;
  const tick = async () => {
    let finished = false;
    for (const box of boxes) {
      try {
        const item = await api("GET", "/api/items/" + encodeURIComponent(box.dataset.progress));
        const p = item.progress || {state: item.state, fraction: item.state === "ready" ? 1 : 0};
        box.querySelector("progress").value = p.fraction;
        box.querySelector(".ptext").textContent =
          p.state + (p.last_node ? ": " + p.last_node : "") + (p.seconds !== undefined ? " · " + p.seconds + " s" : "");
        if (item.state === "ready" || item.state === "failed") finished = true;
      } catch (e) { /* the next tick tries again */ }
    }
    if (finished) location.reload(); else setTimeout(tick, 1000);
  };
  setTimeout(tick, 700);
}

// -- review page ------------------------------------------------------------------------------------------
const review = {
  id: null,
  replacing: null,
  searchSeq: 0,

  init() {
    this.id = document.body.dataset.session;
    const flash = sessionStorage.getItem("medcoder-flash");
    if (flash) { sessionStorage.removeItem("medcoder-flash"); this.banner(flash); }
    document.getElementById("note").addEventListener("click", (ev) => {
      const mark = ev.target.closest("mark.ev");
      if (mark) this.select(mark.dataset.codes.split(" "), false);
    });
    document.querySelectorAll("li.code").forEach((li) => this.wire(li));
    const search = document.getElementById("search");
    if (search) {
      let timer = null;
      const go = () => { clearTimeout(timer); timer = setTimeout(() => this.search(), 180); };
      search.addEventListener("input", go);
      document.getElementById("search-system").addEventListener("change", go);
      document.getElementById("cancel-replace").addEventListener("click", () => this.setReplacing(null));
    }
    const finish = document.getElementById("finish");
    if (finish) finish.addEventListener("click", () => this.post("/finish", undefined, "The note is marked done."));
    document.getElementById("why-close").addEventListener("click", () => { document.getElementById("why").hidden = true; });
    document.addEventListener("keydown", (ev) => this.key(ev));
  },

  // keys for coders who review all day: j/k move, a accept, r reject, p replace, w why, / search
  key(ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.target.closest("input, textarea, select")) return;
    const rows = Array.from(document.querySelectorAll("li.code"));
    const current = document.querySelector("li.code.selected");
    const at = rows.indexOf(current);
    const press = (cls) => { const b = current && current.querySelector(cls); if (b) { ev.preventDefault(); b.click(); } };
    if (ev.key === "j" || ev.key === "k") {
      const next = rows[Math.min(rows.length - 1, Math.max(0, at + (ev.key === "j" ? 1 : -1)))];
      if (next) { ev.preventDefault(); this.select([next.dataset.key], true); next.scrollIntoView({block: "nearest"}); }
    } else if (ev.key === "a") press(".accept");
    else if (ev.key === "r") press(".reject");
    else if (ev.key === "p") press(".replace");
    else if (ev.key === "w") press(".why");
    else if (ev.key === "/") { const s = document.getElementById("search"); if (s) { ev.preventDefault(); s.focus(); } }
  },

  wire(li) {
    const key = li.dataset.key, code = li.dataset.code, system = li.dataset.system;
    const on = (cls, fn) => { const b = li.querySelector(cls); if (b) b.addEventListener("click", fn); };
    on(".pick", () => this.select([key], true));
    on(".accept", () => this.decide({action: "accept", code}));
    on(".reject", () => {
      const form = li.querySelector(".reject-form");
      form.hidden = !form.hidden;
      if (!form.hidden) form.querySelector("input").focus();
    });
    const form = li.querySelector(".reject-form");
    if (form) form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const reason = form.querySelector("input").value.trim();
      if (reason) this.decide({action: "reject", code, reason});
    });
    on(".replace", () => this.setReplacing({code, system}));
    on(".why", () => this.why(code));
    on(".add-sugg", () => this.decide({action: "add", code, system,
      reason: "accepted a suggestion below the threshold"}, true));
  },

  select(keys, scroll) {
    document.querySelectorAll("mark.ev.on").forEach((m) => m.classList.remove("on"));
    document.querySelectorAll("li.code.selected").forEach((m) => m.classList.remove("selected"));
    let first = null;
    document.querySelectorAll("mark.ev").forEach((m) => {
      const codes = m.dataset.codes.split(" ");
      if (keys.some((k) => codes.includes(k))) { m.classList.add("on"); first = first || m; }
    });
    for (const key of keys) {
      document.querySelectorAll("li.code").forEach((li) => { if (li.dataset.key === key) li.classList.add("selected"); });
    }
    if (scroll && first) first.scrollIntoView({block: "center", behavior: "smooth"});
    if (!scroll) {
      const li = Array.from(document.querySelectorAll("li.code.selected"))[0];
      if (li) li.scrollIntoView({block: "nearest", behavior: "smooth"});
    }
  },

  banner(text) {
    const b = document.getElementById("banner");
    b.textContent = text;
    b.hidden = false;
  },

  async post(suffix, body, flash) {
    try {
      await api("POST", "/api/sessions/" + encodeURIComponent(this.id) + suffix, body);
      if (flash) sessionStorage.setItem("medcoder-flash", flash);
      location.reload();
    } catch (e) { this.banner(e.message); }
  },

  async decide(decision, reload) {
    decision.version = parseInt(document.body.dataset.version, 10);
    try {
      const view = await api("POST", "/api/sessions/" + encodeURIComponent(this.id) + "/decisions", decision);
      if (reload || decision.action === "add" || decision.action === "replace") { location.reload(); return; }
      this.update(view);
    } catch (e) {
      if (e.status === 409) {  // another tab decided on this code: show the current state, say why
        sessionStorage.setItem("medcoder-flash", "Not applied: " + e.message);
        location.reload();
      } else {
        this.banner(e.message);
      }
    }
  },

  update(view) {
    document.body.dataset.version = view.version;
    for (const c of view.codes) {
      document.querySelectorAll("#codes li.code").forEach((li) => {
        if (li.dataset.key !== c.key) return;
        li.classList.remove("st-proposed", "st-accepted", "st-rejected");
        li.classList.add("st-" + c.status);
        li.querySelector(".status").textContent = c.status;
        let reason = li.querySelector(".reason");
        if (c.reason) {
          if (!reason) { reason = el("span", {class: "reason"}); li.querySelector(".meta").appendChild(reason); }
          reason.textContent = c.reason;
        } else if (reason) { reason.remove(); }
        const form = li.querySelector(".reject-form");
        if (form) form.hidden = true;
      });
    }
    const n = view.counts;
    document.getElementById("counts").textContent =
      n.accepted + " accepted · " + n.rejected + " rejected · " + n.proposed + " open";
  },

  setReplacing(target) {
    this.replacing = target;
    const box = document.getElementById("replacing");
    box.hidden = !target;
    document.getElementById("replacing-code").textContent = target ? target.code : "";
    if (target) {
      document.getElementById("search-system").value = target.system;
      document.getElementById("search").focus();
    }
    this.search();
  },

  async search() {
    const text = document.getElementById("search").value.trim();
    const hits = document.getElementById("hits");
    const seq = ++this.searchSeq;
    if (!text) { hits.replaceChildren(); return; }
    try {
      const found = await api("POST", "/api/search",
        {text, system: document.getElementById("search-system").value, k: 10});
      if (seq !== this.searchSeq) return;  // a newer keystroke's answer is coming
      hits.replaceChildren(...found.map((h) => {
        const label = this.replacing ? "Replace " + this.replacing.code : "Add";
        const button = el("button", {type: "button", class: "add-hit"}, label);
        button.addEventListener("click", () => {
          const reason = document.getElementById("add-reason").value.trim();
          const system = document.getElementById("search-system").value;
          if (this.replacing) this.decide({action: "replace", code: h.code, old: this.replacing.code, system, reason});
          else this.decide({action: "add", code: h.code, system, reason});
        });
        return el("li", {"data-code": h.code}, el("code", {}, h.code), el("span", {class: "label"}, h.label), button);
      }));
      if (!found.length) hits.replaceChildren(el("li", {class: "empty"}, "no code found"));
    } catch (e) { this.banner(e.message); }
  },

  async why(code) {
    const pane = document.getElementById("why"), body = document.getElementById("why-body");
    body.replaceChildren(el("p", {}, "reading the audit trail…"));
    pane.hidden = false;
    try {
      const w = await api("GET", "/api/sessions/" + encodeURIComponent(this.id) + "/why/" + encodeURIComponent(code));
      body.replaceChildren(...this.whyParts(w));
    } catch (e) { body.replaceChildren(el("p", {class: "bad"}, e.message)); }
  },

  whyParts(w) {
    const parts = [el("h2", {}, w.code + " "), el("p", {}, w.label)];
    parts[0].appendChild(el("small", {}, w.system + " · " + w.status));
    if (w.explanation) parts.push(el("p", {class: "hint"}, w.explanation));
    if (w.confidence !== undefined && w.confidence !== null)
      parts.push(el("p", {}, "confidence " + (100 * w.confidence).toFixed(1) + "%" +
        (w.mention ? " · mention “" + w.mention + "”" : "")));
    if (w.evidence && w.evidence.length) {
      parts.push(el("h4", {}, "Evidence"));
      parts.push(el("ul", {}, ...w.evidence.map((t) => el("li", {}, "“" + t + "”"))));
    }
    if (w.path && w.path.length) {
      parts.push(el("h4", {}, "Path in the code tree"));
      parts.push(el("ol", {}, ...w.path.map((p) => el("li", {}, el("code", {}, p.code), " " + p.label))));
    }
    for (const step of w.choices || []) {
      parts.push(el("h4", {}, "Options at " + step.at));
      parts.push(el("table", {}, ...step.options.map((o) =>
        el("tr", {class: (w.walk || []).includes(o.code) ? "chosen" : ""}, el("td", {}, el("code", {}, o.code)),
          el("td", {}, o.label), el("td", {}, (o.p !== undefined ? o.p.toFixed(3) : ""))))));
    }
    const critic = w.critic || {};
    if (critic.decision) {
      parts.push(el("h4", {}, "Verifier and critic"));
      const items = [el("li", {}, "decision: " + critic.decision)];
      for (const r of critic.reasons || []) items.push(el("li", {}, r));
      if (critic.support !== undefined) items.push(el("li", {}, "p(supported) = " + Number(critic.support).toFixed(3)));
      parts.push(el("ul", {}, ...items));
    }
    const ranking = w.ranking || {};
    if (ranking.sources || ranking.contributions || ranking.features) {
      parts.push(el("h4", {}, "Ranker"));
      if (ranking.sources) parts.push(el("p", {}, "found by: " + ranking.sources.join(", ")));
      if (ranking.ranker_probability !== undefined && ranking.ranker_probability !== null)
        parts.push(el("p", {}, "ranker probability " + Number(ranking.ranker_probability).toFixed(3)));
      const rows = Array.isArray(ranking.contributions) && ranking.contributions.length
        ? ranking.contributions.map((c) => [c.feature, c.value, c.effect])
        : Object.entries(ranking.features || {}).filter(([, v]) => v !== null && v !== 0).map(([k, v]) => [k, v, null]);
      if (rows.length) parts.push(el("table", {}, el("tr", {}, el("th", {}, "feature"), el("th", {}, "value"),
        el("th", {}, "moved p by")), ...rows.slice(0, 8).map(([k, v, d]) => el("tr", {}, el("td", {}, k),
        el("td", {}, v === null ? "–" : Number(v).toFixed(3)), el("td", {}, d === null ? "" : (d > 0 ? "+" : "") +
        Number(d).toFixed(3))))));
    }
    if (w.audit_events && w.audit_events.length) {
      parts.push(el("h4", {}, "Audit events"));
      parts.push(el("ul", {}, ...w.audit_events.map((e) => el("li", {},
        el("a", {href: "/runs/" + encodeURIComponent(this.id) + "/audit#ev-" + e.seq}, "#" + e.seq + " " + e.kind),
        " " + e.node))));
    }
    return parts;
  },
};

// -- audit page -----------------------------------------------------------------------------------------------
function auditPage() {
  const box = document.getElementById("show-detail");
  box.addEventListener("change", () => document.body.classList.toggle("show-detail", box.checked));
  if (location.hash) {  // a link to one event: show the detailed rows, so a model call can be the target
    box.checked = true;
    document.body.classList.add("show-detail");
    const target = document.getElementById(location.hash.slice(1));
    if (target) target.scrollIntoView({block: "center"});
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  if (page === "worklist" || page === "waiting") watchProgress();
  if (page === "review") review.init();
  if (page === "audit") auditPage();
});
