"""The dashboard's HTML: a login form and one self-refreshing page (no template engine).

Everything dynamic is rendered by the page's script with ``textContent`` (never innerHTML of
data), so transfer remarks or error texts cannot inject markup.
"""

from __future__ import annotations

from html import escape
from string import Template

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f4f6f8;
color:#1d2630}
header{background:#14324a;color:#fff;padding:10px 20px;display:flex;align-items:center;gap:16px}
header h1{font-size:18px;margin:0;flex:1}
header a,header button{color:#fff;background:none;border:1px solid #fff6;border-radius:4px;
padding:4px 10px;cursor:pointer;text-decoration:none;font-size:13px}
main{padding:16px 20px;display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));
gap:16px}
section{background:#fff;border-radius:8px;padding:12px 16px;box-shadow:0 1px 3px #0002}
section.wide{grid-column:1/-1}
h2{font-size:14px;text-transform:uppercase;letter-spacing:.05em;color:#52606d;margin:0 0 8px}
.tiles{display:flex;gap:10px;flex-wrap:wrap}
.tile{flex:1;min-width:90px;padding:8px 10px;border-radius:6px;background:#eef2f5}
.tile b{display:block;font-size:24px}
.tile span{font-size:12px;color:#52606d}
.PENDING b{color:#b7791f}.SUCCESS b{color:#2f855a}.FAILED b{color:#c53030}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:4px 6px;border-bottom:1px solid #e4e7eb;vertical-align:top}
.dot{display:inline-block;width:9px;height:9px;border-radius:50%;margin-right:4px}
.ok{background:#2f855a}.stale{background:#c53030}.stopped{background:#9aa5b1}
.badge{padding:6px 10px;border-radius:6px;font-weight:600;display:inline-block}
.badge.good{background:#e3f9e5;color:#276749}.badge.bad{background:#ffe3e3;color:#9b2c2c}
button.retry{background:#14324a;color:#fff;border:0;border-radius:4px;padding:3px 10px;
cursor:pointer}
.muted{color:#7b8794;font-size:12px}
.err{font-family:ui-monospace,monospace;font-size:12px;color:#9b2c2c;word-break:break-all}
svg text{font-size:10px;fill:#52606d}
.login{max-width:340px;margin:80px auto;background:#fff;padding:24px;border-radius:8px;
box-shadow:0 1px 3px #0003}
.login input{width:100%;box-sizing:border-box;padding:8px;margin:4px 0 12px;
border:1px solid #cbd2d9;border-radius:4px}
.login button{width:100%;padding:9px;background:#14324a;color:#fff;border:0;border-radius:4px}
.error{color:#c53030;margin-bottom:8px}
"""

_LOGIN = Template("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Dompet operator login</title>
<meta name="viewport" content="width=device-width,initial-scale=1">
<style>$style</style></head>
<body><form class="login" method="post" action="/dashboard/login">
<h2>Dompet operator login</h2>
$error
<input type="hidden" name="next" value="$next">
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Log in</button>
</form></body></html>
""")

_PAGE = Template("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Dompet operations</title>
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="csrf-token" content="$csrf">
<style>$style</style></head>
<body>
<header><h1>Dompet operations</h1>
<span class="muted" style="color:#cbd2d9" id="updated"></span>
<span class="muted" style="color:#cbd2d9" id="timezone"></span>
$saq_link
<span>$user</span>
<form method="post" action="/dashboard/logout" style="margin:0">
<input type="hidden" name="csrf_token" value="$csrf"><button type="submit">Log out</button></form>
</header>
<main>
<section><h2>Transfers by status</h2><div class="tiles" id="counts"></div></section>
<section><h2>Queue</h2><div class="tiles" id="queue"></div></section>
<section><h2>Settlement latency and throughput</h2><div class="tiles" id="latency"></div></section>
<section><h2>Ledger invariants</h2><div id="invariants"></div></section>
<section class="wide"><h2>Settled per minute (bars) and p95 latency (line)</h2>
<div id="chart"></div></section>
<section class="wide"><h2>Workers</h2><table><thead><tr><th>Worker</th><th>Kind</th>
<th>State</th><th>Last heartbeat</th><th>Settled</th><th>Refunded</th>
<th>Failed attempts</th></tr></thead>
<tbody id="workers"></tbody></table></section>
<section class="wide"><h2>Recent failures</h2><div id="retry-result" class="muted"></div>
<table><thead><tr><th>Transfer</th><th>Status</th><th>Amount</th><th>Attempts</th>
<th>Last error</th><th>Next attempt</th><th></th></tr></thead>
<tbody id="failures"></tbody></table></section>
</main>
<script id="initial-summary" type="application/json">$summary</script>
<script nonce="$nonce">
"use strict";
const REFRESH_MS = $refresh_ms;
const CSRF = document.querySelector('meta[name="csrf-token"]').content;
const SVGNS = "http://www.w3.org/2000/svg";
function el(tag, attrs, ...kids) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const kid of kids) node.append(kid instanceof Node ? kid : String(kid));
  return node;
}
function svg(tag, attrs) {
  const node = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}
function tile(value, label, cls) {
  return el("div", {"class": "tile " + (cls || ""), "data-key": label}, el("b", {}, value),
            el("span", {}, label));
}
function ms(v) { return v === null || v === undefined ? "-" : (v < 1000 ? Math.round(v) + " ms"
  : (v / 1000).toFixed(1) + " s"); }
function age(s) { return s === null || s === undefined ? "-" : (s < 120 ? s.toFixed(1) + " s"
  : Math.round(s / 60) + " min"); }
// Times come in the display zone with their offset ("2026-12-06T09:48:35.1+07:00").
function offset(iso) { return iso.slice(-6); }
function when(iso) { return iso ? iso.slice(0, 10) + " " + iso.slice(11, 19) + " " + offset(iso)
  : "-"; }
function rupiah(n) { return "Rp " + Number(n).toLocaleString("id-ID"); }
function chart(minutes) {
  const W = 900, H = 180, L = 36, R = 44, T = 10, B = 22;
  const box = svg("svg", {viewBox: "0 0 " + W + " " + H, width: "100%", role: "img",
    "aria-label": "settled per minute and p95 latency", id: "throughput-chart"});
  const maxN = Math.max(1, ...minutes.map(m => m.settled + m.failed));
  const maxL = Math.max(1, ...minutes.map(m => m.p95_ms || 0));
  const slot = (W - L - R) / Math.max(minutes.length, 1);
  const y = v => H - B - (H - T - B) * v / maxN;
  const yl = v => H - B - (H - T - B) * v / maxL;
  box.append(svg("line", {x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#cbd2d9"}));
  const axis = (x, yy, text, anchor) => { const t = svg("text", {x: x, y: yy,
    "text-anchor": anchor}); t.textContent = text; box.append(t); };
  axis(L - 4, T + 8, String(maxN), "end"); axis(L - 4, H - B, "0", "end");
  axis(W - R + 4, T + 8, ms(maxL), "start");
  let path = "";
  minutes.forEach((m, i) => {
    const x = L + i * slot + 2, w = Math.max(slot - 4, 1);
    const label = m.minute.slice(11, 16) + " " + offset(m.minute) + ": " + m.settled +
      " settled, " + m.failed + " failed, p95 " + ms(m.p95_ms);
    const bar = (top, bottom, fill, cls, count) => {
      const rect = svg("rect", {x: x, y: y(top), width: w, height: y(bottom) - y(top),
                                fill: fill, "class": cls, "data-count": count});
      const title = svg("title", {}); title.textContent = label;
      rect.append(title); box.append(rect);
    };
    if (m.settled) bar(m.settled, 0, "#3a8bbb", "settled-bar", m.settled);
    if (m.failed) bar(m.settled + m.failed, m.settled, "#e12d39", "failed-bar", m.failed);
    if (m.p95_ms !== null) {
      path += (path ? " L" : "M") + (x + w / 2) + " " + yl(m.p95_ms);
      box.append(svg("circle", {cx: x + w / 2, cy: yl(m.p95_ms), r: 3, fill: "#f0b429"}));
    }
    if (i % 3 === 0) axis(x + w / 2, H - 6, m.minute.slice(11, 16), "middle");
  });
  if (path) box.append(svg("path", {d: path, fill: "none", stroke: "#f0b429",
                                     "stroke-width": 2}));
  return box;
}
async function retry(id, button) {
  button.disabled = true;
  const out = document.getElementById("retry-result");
  const resp = await fetch("/dashboard/api/transfers/" + encodeURIComponent(id) + "/retry",
    {method: "POST", credentials: "same-origin", headers: {"X-CSRF-Token": CSRF}});
  const body = await resp.json().catch(() => ({}));
  out.textContent = resp.ok ? "Retry of " + id + " queued." : "Retry failed: " +
    (body.message || resp.status);
  refresh();
}
function render(s) {
  const replace = (id, ...kids) => document.getElementById(id).replaceChildren(...kids);
  replace("counts", ...["PENDING", "SUCCESS", "FAILED"].map(k => tile(s.counts[k] || 0, k, k)));
  const queue = [tile(s.pending, "pending (outbox)"),
                 tile(age(s.oldest_pending_age_seconds), "oldest PENDING age")];
  for (const [k, v] of Object.entries(s.queue)) {
    if (k !== "pending") queue.push(tile(v, "saq " + k));
  }
  replace("queue", ...queue);
  replace("latency", tile(ms(s.latency_ms.p50), "p50"), tile(ms(s.latency_ms.p95), "p95"),
          tile(ms(s.latency_ms.p99), "p99"),
          tile(s.throughput_per_minute, "settled/min (" + (s.window_complete ? s.window_minutes +
            " min" : "since " + s.window_start.slice(11, 16) + ", the latest settled") + ")"));
  const inv = el("div", {}, el("span", {"class": "badge " + (s.invariants_ok ? "good" : "bad"),
    id: "invariants-badge"}, s.invariants_ok ? "All invariants hold" : "INVARIANT VIOLATED"));
  for (const v of s.invariant_violations) inv.append(el("div", {"class": "err"}, v));
  inv.append(el("div", {"class": "muted"}, "checked " + when(s.invariants_checked_at)));
  replace("invariants", inv);
  replace("chart", chart(s.minutes));
  replace("workers", ...(s.workers.length ? s.workers.map(w => el("tr",
    {"data-worker": w.worker_id}, el("td", {}, w.worker_id), el("td", {}, w.kind),
    el("td", {}, el("span", {"class": "dot " + (w.state === "stopped" ? "stopped" : (w.alive ?
      "ok" : "stale"))}), w.state === "stopped" ? "stopped" : (w.alive ? "alive" : "stale")),
    el("td", {}, age(w.seconds_since_seen) + " ago"), el("td", {"class": "settled"}, w.settled),
    el("td", {"class": "refunded"}, w.failed),
    el("td", {"class": "failed-attempts"}, w.failed_attempts))) : [el("tr", {},
      el("td", {colspan: 7, "class": "muted"},
      "no worker has reported yet"))]));
  replace("failures", ...(s.failures.length ? s.failures.map(f => {
    const action = el("td", {});
    if (f.retryable) {
      const b = el("button", {"class": "retry", "data-transfer": f.transfer_id}, "Retry now");
      b.addEventListener("click", () => retry(f.transfer_id, b));
      action.append(b);
    } else action.append(el("span", {"class": "muted"}, "refunded"));
    return el("tr", {"data-transfer": f.transfer_id}, el("td", {}, f.transfer_id),
      el("td", {"class": "status"}, f.status),
      el("td", {}, rupiah(f.amount)), el("td", {}, f.attempts),
      el("td", {"class": "err"}, f.last_error), el("td", {}, when(f.next_attempt_at)), action);
  }) : [el("tr", {}, el("td", {colspan: 7, "class": "muted"}, "no failures"))]));
  document.getElementById("updated").textContent = "updated " + s.generated_at.slice(11, 19);
  document.getElementById("timezone").textContent = "times in " + s.timezone + " (" +
    offset(s.generated_at) + ")";
}
async function refresh() {
  try {
    const resp = await fetch("/dashboard/api/summary", {credentials: "same-origin"});
    if (resp.status === 401) { location.href = "/dashboard/login?next=/dashboard"; return; }
    if (resp.ok) render(await resp.json());
  } catch (e) { document.getElementById("updated").textContent = "offline: " + e; }
}
render(JSON.parse(document.getElementById("initial-summary").textContent));
setInterval(refresh, REFRESH_MS);
</script>
</body></html>
""")


def login_page(next_path: str, error: str | None) -> str:
    return _LOGIN.substitute(
        style=_STYLE,
        next=escape(next_path),
        error=f'<div class="error" role="alert">{escape(error)}</div>' if error else "",
    )


def content_security_policy(nonce: str | None = None) -> str:
    """No script but our own (by nonce), no framing, forms only to ourselves."""
    script = f"'nonce-{nonce}'" if nonce else "'none'"
    return (
        f"default-src 'self'; script-src {script}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    )


def dashboard_page(
    *,
    username: str,
    csrf_token: str,
    summary_json: str,
    refresh_ms: int,
    saq_mounted: bool,
    nonce: str = "",
) -> str:
    return _PAGE.substitute(
        nonce=escape(nonce),
        style=_STYLE,
        user=escape(username),
        csrf=escape(csrf_token),
        # JSON inside <script>: no "</script>" or "<!--" can close it.
        summary=summary_json.replace("<", "\\u003c").replace(">", "\\u003e"),
        refresh_ms=refresh_ms,
        saq_link='<a href="/dashboard/saq/">SAQ monitor</a>' if saq_mounted else "",
    )
