// The public receipt page: render a receipt document and its verification checks.
//
// `renderReceipt(container, doc, checks)` draws a receipt as a person reads it; it fetches
// nothing and builds the DOM with textContent only, so a document's strings can never become
// markup. `loadReceiptPage(root)` is the page's own code: it fetches /share/{token} and the
// published key set (same origin), verifies with verify.js, and renders. The page starts it
// when it finds an element with `data-share-token`; an offline page (a proof package's
// verify.html) calls `renderReceipt` itself. This module's one import is the line below.
import { summarize, verifyReceipt, redactedPaths, GENESIS_HASH } from "./verify.js";

const SEVERITY = {
  honey: { label: "Honey", tone: "ok", says: "every rule satisfied" },
  jelly: { label: "Jelly", tone: "warn", says: "low or mid findings only" },
  propolis: { label: "Propolis", tone: "bad", says: "a high-tier finding" },
};
const ACTION = { approve: "Approve", review: "Review", resubmit: "Resubmit", reject: "Reject" };
const LANE = { agent_work: "Agent work", dataset: "Dataset", compute: "Compute" };
const KIND = {
  "defendablecloud.eval-receipt/v1": "Evaluation receipt",
  "defendablecloud.receipt/v1": "Evaluation receipt",
  "defendablecloud.cook-receipt/v1": "Cook receipt",
  "defendablecloud.incident-receipt/v1": "Incident receipt",
  "defendablecloud.unlock-receipt/v1": "Unlock receipt",
};

// ---------------------------------------------------------------- DOM helpers

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key.startsWith("data-") || key.startsWith("aria-") || ["title", "role", "href", "id"].includes(key)) {
      el.setAttribute(key, value === true ? "" : String(value));
    } else el[key] = value;
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function obj(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? value : {};
}

function list(value) {
  return Array.isArray(value) ? value : [];
}

function text(value, fallback = "—") {
  return typeof value === "string" && value ? value : typeof value === "number" ? String(value) : fallback;
}

function bytesText(size) {
  if (!Number.isFinite(size)) return "—";
  if (size < 1024) return `${size} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = size / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}

function timeText(iso) {
  if (typeof iso !== "string" || !iso) return "—";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toISOString().replace("T", " ").replace(/\.\d{3}Z$/, " UTC").replace(/Z$/, " UTC");
}

function hash(value, cls = "") {
  const full = text(value);
  return h("code", { class: `hash ${cls}`.trim(), title: full }, full);
}

function card(title, attrs, ...children) {
  return h("section", { class: "card", ...attrs }, title ? h("h2", {}, title) : null, ...children);
}

function facts(rows) {
  return h(
    "dl",
    { class: "facts" },
    rows.filter(Boolean).map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]),
  );
}

function pill(label, tone, attrs = {}) {
  return h("span", { class: `pill pill--${tone}`, ...attrs }, label);
}

// ---------------------------------------------------------------- sections

function banner(checks) {
  const s = summarize(checks);
  const tone = s.verified ? "ok" : "bad";
  const title = s.verified ? "Receipt verified" : "Verification failed";
  const parts = [`${s.passed} of ${checks.length} checks passed`];
  if (s.skipped) parts.push(`${s.skipped} not applicable`);
  const sub = s.verified
    ? `${parts.join(" · ")}, checked in this browser.`
    : `${s.failed} ${s.failed === 1 ? "check" : "checks"} failed: ${s.failures.join(", ")}. Do not rely on this receipt.`;
  return h(
    "section",
    { class: `banner banner--${tone}`, role: "status", "data-testid": "verification", "data-verified": String(s.verified) },
    h("span", { class: "banner__icon", "aria-hidden": "true" }, s.verified ? "\u2713" : "\u2715"),
    h("div", {}, h("p", { class: "banner__title" }, title), h("p", { class: "banner__sub" }, sub)),
  );
}

function verdictCard(payload, verified) {
  const verdict = obj(payload.verdict);
  if (!Object.keys(verdict).length) return null;
  const severity = SEVERITY[verdict.severity] || { label: text(verdict.severity), tone: "neutral", says: "" };
  const risk = obj(verdict.risk);
  return h(
    "section",
    { class: `card verdict verdict--${severity.tone}`, "data-testid": "verdict" },
    h("p", { class: "eyebrow" }, "Verdict"),
    verified
      ? null
      : h("p", { class: "unverified", "data-testid": "unverified" }, "Unverified: what this receipt says may have been altered."),
    h(
      "div",
      { class: "verdict__main" },
      h("span", { class: `verdict__severity tone--${severity.tone}` }, severity.label),
      h("span", { class: "verdict__score" }, `${text(verdict.score)}%`, h("small", {}, " of rules satisfied")),
    ),
    severity.says ? h("p", { class: "verdict__says" }, severity.says) : null,
    h(
      "div",
      { class: "verdict__chips" },
      pill(`Recommended: ${ACTION[verdict.recommended_action] || text(verdict.recommended_action)}`, "neutral"),
      pill(verdict.client_ready ? "Client ready" : "Not client ready", verdict.client_ready ? "ok" : "warn"),
      pill(`High ${risk.high ?? 0}`, risk.high ? "bad" : "muted"),
      pill(`Mid ${risk.mid ?? 0}`, risk.mid ? "warn" : "muted"),
      pill(`Low ${risk.low ?? 0}`, "muted"),
    ),
  );
}

function flagsCard(payload) {
  const verdict = obj(payload.verdict);
  if (!Array.isArray(verdict.flags)) return null;
  const flags = list(verdict.flags);
  return card(
    `Flags (${flags.length})`,
    { "data-testid": "flags" },
    flags.length
      ? h(
          "ul",
          { class: "rows" },
          flags.map((f) =>
            h(
              "li",
              { class: "row" },
              pill(text(obj(f).tier), tierTone(obj(f).tier)),
              h("div", { class: "row__body" }, h("code", { class: "rule" }, text(obj(f).rule_id)), h("p", {}, text(obj(f).message, ""))),
            ),
          ),
        )
      : h("p", { class: "empty" }, "No flags: nothing needs attention."),
  );
}

function tierTone(tier) {
  return tier === "high" ? "bad" : tier === "mid" ? "warn" : tier === "low" ? "muted" : "neutral";
}

function findingsCard(payload) {
  if (!Array.isArray(payload.findings)) return null;
  const findings = list(payload.findings);
  const flagged = findings.filter((f) => obj(f).status !== "pass").length;
  const rows = findings.map((raw) => {
    const f = obj(raw);
    const tone = f.status === "pass" ? "ok" : f.status === "flag" ? tierTone(f.tier) : "neutral";
    const seen = f.observed !== undefined && f.observed !== null ? `observed ${f.observed}` : "";
    const wanted = f.expected !== undefined && f.expected !== null ? `expected ${f.expected}` : "";
    return h(
      "li",
      { class: "row" },
      pill(f.status === "flag" && f.tier ? `${f.status} · ${f.tier}` : text(f.status), tone),
      h(
        "div",
        { class: "row__body" },
        h("code", { class: "rule" }, text(f.rule_id)),
        h("p", {}, text(f.message, "")),
        seen || wanted ? h("p", { class: "muted small" }, [seen, wanted].filter(Boolean).join(" · ")) : null,
      ),
    );
  });
  const body = h("ul", { class: "rows" }, rows);
  return card(
    `Findings (${findings.length})`,
    { "data-testid": "findings" },
    h("p", { class: "muted small" }, `${findings.length - flagged} passed, ${flagged} flagged or open`),
    findings.length > 6 ? h("details", {}, h("summary", {}, `Show all ${findings.length} findings`), body) : body,
  );
}

// A redacted field shows as such, its commitment on hover: the value is the org's to reveal.
function shown(payload, path, value, plain = (v) => text(v)) {
  if (!(redactedPaths(payload) || []).includes(path)) return plain(value);
  return h("span", { class: "redacted", title: text(value, ""), "data-redacted": path }, "Redacted");
}

function evidenceCard(payload) {
  if (!Array.isArray(payload.evidence)) return null;
  const evidence = list(payload.evidence);
  return card(
    `Evidence (${evidence.length})`,
    { "data-testid": "evidence" },
    evidence.length
      ? h(
          "ul",
          { class: "rows" },
          evidence.map((raw, i) => {
            const e = obj(raw);
            return h(
              "li",
              { class: "row row--evidence", "data-sha256": text(e.sha256, "") },
              h(
                "div",
                { class: "row__body" },
                h("p", { class: "evidence__name" }, shown(payload, `evidence[${i}].name`, e.name)),
                h("p", { class: "muted small" }, `${text(e.media_type)} · ${bytesText(e.size)}`),
                hash(e.sha256),
              ),
            );
          }),
        )
      : h("p", { class: "empty" }, "No evidence attached."),
  );
}

function approvalCard(payload) {
  const approval = obj(payload.approval || payload.acknowledgement);
  if (!Object.keys(approval).length) return null;
  return card(
    payload.approval ? "Approval" : "Acknowledgement",
    { "data-testid": "approval" },
    facts([
      ["Approver", shown(payload, "approval.approver", approval.approver, (v) => h("strong", {}, text(v)))],
      ["Decided", timeText(approval.decided_at)],
      approval.note ? ["Note", shown(payload, "approval.note", approval.note, (v) => h("q", {}, v))] : null,
      ["Minted", timeText(payload.minted_at)],
    ]),
  );
}

function runCard(payload) {
  const sheet = obj(payload.flight_sheet);
  const agent = obj(payload.agent_profile);
  const rows = [
    payload.lane ? ["Lane", LANE[payload.lane] || text(payload.lane)] : null,
    payload.project ? ["Project", text(payload.project)] : null,
    sheet.id ? ["Flight sheet", h("span", {}, `${text(sheet.id)} `, h("span", { class: "muted" }, `v${text(sheet.version)}`))] : null,
    sheet.sha256 ? ["Sheet hash", hash(sheet.sha256)] : null,
    agent.model ? ["Agent", `${text(agent.model)} · ${text(agent.harness)}`] : null,
    list(agent.tools).length ? ["Tools", list(agent.tools).join(", ")] : null,
    payload.run_id ? ["Run", h("code", {}, text(payload.run_id))] : null,
    payload.base_model ? ["Base model", text(payload.base_model)] : null,
    payload.cooked_model ? ["Cooked model", text(payload.cooked_model)] : null,
    payload.incident_id ? ["Incident", h("code", {}, text(payload.incident_id))] : null,
    payload.kind ? ["Kind", text(payload.kind)] : null,
    payload.assignment_sha256 ? ["Assignment", hash(payload.assignment_sha256)] : null,
    payload.submission_sha256 ? ["Submission", hash(payload.submission_sha256)] : null,
  ].filter(Boolean);
  if (!rows.length) return null;
  return card("Lane and flight sheet", { "data-testid": "run" }, facts(rows));
}

function chainCard(doc, payload) {
  const t = obj(doc.transparency);
  const seq = payload.seq;
  return card(
    "Chain position",
    { "data-testid": "chain" },
    h(
      "div",
      { class: "stats" },
      h("div", { class: "stat" }, h("span", { class: "stat__value" }, text(seq)), h("span", { class: "stat__label" }, "seq")),
      h(
        "div",
        { class: "stat" },
        h("span", { class: "stat__value" }, text(t.tree_size)),
        h("span", { class: "stat__label" }, "tree size"),
      ),
      h(
        "div",
        { class: "stat" },
        h("span", { class: "stat__value" }, text(t.leaf_index)),
        h("span", { class: "stat__label" }, "leaf index"),
      ),
    ),
    facts([
      ["Receipt hash", hash(doc.receipt_hash)],
      ["Parent", payload.parent_hash === GENESIS_HASH ? h("span", {}, "genesis ", hash(payload.parent_hash)) : hash(payload.parent_hash)],
      t.origin ? ["Log", h("code", {}, text(t.origin))] : null,
      ["Org", h("code", {}, text(payload.org_id))],
    ]),
  );
}

function checksCard(checks) {
  return card(
    "Verification",
    { "data-testid": "checks" },
    h(
      "ol",
      { class: "checks" },
      checks.map((c) =>
        h(
          "li",
          { class: `check check--${c.outcome.toLowerCase()}`, "data-check": c.name, "data-outcome": c.outcome },
          h("span", { class: "check__badge" }, c.outcome),
          h("div", { class: "check__body" }, h("p", { class: "check__name" }, c.name), h("p", { class: "check__detail" }, c.detail)),
        ),
      ),
    ),
  );
}

/** Draw `doc` (a receipt document) and its `checks` (verifyReceipt's answer) into `container`. */
export function renderReceipt(container, doc, checks) {
  const payload = obj(obj(doc).payload);
  const kind = KIND[payload.schema] || "Receipt";
  const verified = summarize(checks).verified;
  container.classList.toggle("receipt--unverified", !verified);
  container.replaceChildren(
    banner(checks),
    h(
      "header",
      { class: "title" },
      h("p", { class: "eyebrow" }, kind),
      h("h1", {}, text(payload.project, kind)),
      h("p", { class: "muted" }, `seq ${text(payload.seq)} · minted ${timeText(payload.minted_at)}`),
    ),
    verdictCard(payload, verified),
    flagsCard(payload),
    h("div", { class: "grid" }, approvalCard(payload), runCard(payload)),
    evidenceCard(payload),
    findingsCard(payload),
    chainCard(obj(doc), payload),
    checksCard(checks),
  );
  container.dataset.state = "done";
  container.dataset.verified = String(verified);
}

// ---------------------------------------------------------------- the page

function showProblem(container, title, detail) {
  container.replaceChildren(
    h(
      "section",
      { class: "banner banner--bad", role: "alert", "data-testid": "verification", "data-verified": "false" },
      h("span", { class: "banner__icon", "aria-hidden": "true" }, "\u2715"),
      h("div", {}, h("p", { class: "banner__title" }, title), h("p", { class: "banner__sub" }, detail)),
    ),
  );
  container.dataset.state = "error";
}

async function getJSON(url) {
  const reply = await fetch(url, { headers: { accept: "application/json" }, credentials: "omit", cache: "no-store" });
  if (!reply.ok) {
    let detail = `${reply.status} ${reply.statusText}`;
    try {
      detail = (await reply.json()).detail || detail;
    } catch {
      // the status says enough
    }
    throw new Error(`${url}: ${detail}`);
  }
  return reply.json();
}

/** Fetch the shared receipt and the key set, verify, render. */
export async function loadReceiptPage(container) {
  const token = container.dataset.shareToken;
  let doc;
  try {
    doc = await getJSON(`/share/${encodeURIComponent(token)}`);
  } catch (exc) {
    showProblem(container, "This receipt could not be loaded", String(exc.message || exc));
    return;
  }
  let keys = null;
  let keyProblem = null;
  try {
    keys = await getJSON("/.well-known/defendable-keys.json");
  } catch (exc) {
    keyProblem = String(exc.message || exc);
  }
  const checks = await verifyReceipt(doc, keys, { keySource: "the published key set" });
  if (keyProblem) {
    checks.push({ name: "key set", outcome: "FAIL", detail: `the published key set could not be fetched: ${keyProblem}` });
  }
  renderReceipt(container, doc, checks);
  const link = document.querySelector("[data-json-link]");
  if (link) link.setAttribute("href", `/share/${encodeURIComponent(token)}`);
}

if (typeof document !== "undefined") {
  const root = document.querySelector("[data-share-token]");
  if (root) loadReceiptPage(root);
}
