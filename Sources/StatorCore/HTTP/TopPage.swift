/// `GET /`: the page an operator looks at (SPEC section 14), with its script and style sheet
/// at `/ui/app.js` and `/ui/app.css`. All three are in the binary: no external asset, no
/// framework. The script fetches `/api/v1/top` every 2 s and builds the DOM with
/// `textContent` only, since names and refused lines come from the network; the
/// `Content-Security-Policy` lets the page run its own script and nothing else (no inline
/// script, no other origin), so even a value that slipped through could not run.
enum TopPage {
    /// Sent with all three: scripts and styles from this origin only, requests to it only.
    static let contentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
        + "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

    /// The response for one of the page's routes.
    static func response(_ route: HTTPRoute) -> HTTPResponse {
        let (type, body): (String, String) =
            switch route {
            case .pageScript: ("text/javascript; charset=utf-8", script)
            case .pageStyle: ("text/css; charset=utf-8", style)
            default: ("text/html; charset=utf-8", html)
            }
        return HTTPResponse(
            status: 200,
            headers: [
                ("Content-Type", type), ("Content-Security-Policy", contentSecurityPolicy),
                ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"), ("Cache-Control", "no-cache"),
            ],
            body: Array(body.utf8))
    }

    static let html = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>Stator</title>
        <link rel="stylesheet" href="/ui/app.css">
        <script src="/ui/app.js" defer></script>
        </head>
        <body>
        <header>
        <h1>Stator</h1>
        <p id="status" role="status" aria-live="polite">A statsd aggregation agent: what it receives, from the
        flushes of the last minutes.</p>
        </header>
        <noscript>
        <p class="notice">This page is Stator's live view of its traffic, drawn by its script: with scripting off,
        read the same as JSON at <a href="/api/v1/top">/api/v1/top</a> and the agent's own metrics at <a
        href="/metrics">/metrics</a>.</p></noscript>
        <main>
        <section aria-labelledby="h-rates">
        <h2 id="h-rates">Last 15 minutes</h2>
        <div class="charts">
        <figure><figcaption id="c-lines">Lines received per second</figcaption>
        <svg id="chart-lines" role="img" aria-labelledby="c-lines" viewBox="0 0 300 100" preserveAspectRatio="none">
        </svg><p class="now" id="now-lines"></p></figure>
        <figure><figcaption id="c-drops">Kernel drops per second</figcaption>
        <svg id="chart-drops" role="img" aria-labelledby="c-drops" viewBox="0 0 300 100" preserveAspectRatio="none">
        </svg><p class="now" id="now-drops"></p></figure>
        </div>
        </section>
        <section aria-labelledby="h-lines"><h2 id="h-lines">Names with the most lines</h2><div class="scroll">
        <table id="t-lines"><caption id="cap-lines">In the window</caption><thead><tr><th scope="col">Name</th>
        <th scope="col" class="n">Lines</th><th scope="col" class="n">Series</th><th scope="col">Types</th>
        <th scope="col">Tag keys</th></tr></thead><tbody></tbody></table></div></section>
        <section aria-labelledby="h-series"><h2 id="h-series">Names with the most live series</h2>
        <div class="scroll"><table id="t-series"><caption>Now</caption><thead><tr><th scope="col">Name</th>
        <th scope="col" class="n">Series</th><th scope="col" class="n">Lines</th><th scope="col">Types</th>
        <th scope="col">Tag keys</th></tr></thead><tbody></tbody></table></div></section>
        <section aria-labelledby="h-tags"><h2 id="h-tags">Tag keys</h2><div class="scroll"><table id="t-tags">
        <caption>By distinct values among the live series</caption><thead><tr><th scope="col">Key</th>
        <th scope="col" class="n">Distinct values</th><th scope="col" class="n">Series</th>
        <th scope="col">Top values</th></tr></thead><tbody></tbody></table></div></section>
        <section aria-labelledby="h-refused"><h2 id="h-refused">Refused lines</h2><div class="scroll">
        <table id="t-refused"><caption>By reason, with the last lines as sent</caption><thead><tr>
        <th scope="col">Reason</th><th scope="col" class="n">Total</th><th scope="col">Last lines</th></tr></thead>
        <tbody></tbody></table></div></section>
        <section aria-labelledby="h-sinks"><h2 id="h-sinks">Sinks</h2><div class="scroll"><table id="t-sinks">
        <caption>Health of each destination</caption><thead><tr><th scope="col">Sink</th>
        <th scope="col">Last success</th><th scope="col" class="n">Queued flushes</th>
        <th scope="col" class="n">Errors</th></tr></thead><tbody></tbody></table></div></section>
        <section aria-labelledby="h-mapping" id="s-mapping" hidden><h2 id="h-mapping">Mapping rules</h2>
        <div class="scroll"><table id="t-rules"><caption>Lines each rule mapped in the last 5 minutes</caption>
        <thead><tr><th scope="col" class="n">Line</th><th scope="col">Match</th><th scope="col" class="n">Lines</th></tr>
        </thead><tbody></tbody></table></div>
        <div class="scroll"><table id="t-mapping"><caption>New series identities by what the rules said</caption>
        <thead><tr><th scope="col">Result</th><th scope="col" class="n">Series</th></tr></thead><tbody></tbody>
        </table></div></section>
        </main>
        </body>
        </html>
        """#

    static let style = #"""
        :root {
            color-scheme: light dark; --fg: #111; --bg: #fff; --muted: #444; --line: #0b57d0; --drop: #b3261e; --rule: #ccc;
        }
        @media (prefers-color-scheme: dark) {
          :root { --fg: #eee; --bg: #111; --muted: #bbb; --line: #8ab4f8; --drop: #f2b8b5; --rule: #444; }
        }
        body {
          margin: 0 auto; max-width: 72rem; padding: 0.75rem; font: 16px/1.4 system-ui, sans-serif;
          color: var(--fg); background: var(--bg);
        }
        h1 { margin: 0; font-size: 1.5rem; }
        h2 { font-size: 1.15rem; margin: 1.25rem 0 0.5rem; }
        #status, caption, .now { color: var(--muted); }
        .notice { padding: 0.5rem; border: 1px solid var(--rule); }
        .charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(16rem, 1fr)); gap: 1rem; }
        figure { margin: 0; }
        svg { width: 100%; height: 8rem; border: 1px solid var(--rule); }
        svg path { fill: none; stroke-width: 2; vector-effect: non-scaling-stroke; }
        #chart-lines path { stroke: var(--line); }
        #chart-drops path { stroke: var(--drop); }
        .scroll { overflow-x: auto; }
        table { border-collapse: collapse; width: 100%; }
        caption { text-align: left; padding-bottom: 0.25rem; }
        th, td { text-align: left; padding: 0.25rem 0.5rem; border-bottom: 1px solid var(--rule); vertical-align: top; }
        .n { text-align: right; font-variant-numeric: tabular-nums; }
        td.name, td code { overflow-wrap: anywhere; font-family: ui-monospace, monospace; }
        """#

    static let script = #"""
        // Stator's page: fetches /api/v1/top every few seconds and draws it. Every value comes from
        // the network (metric names, refused lines), so the DOM is built with textContent only.
        "use strict";
        (function () {
          const svgNS = "http://www.w3.org/2000/svg";
          const refreshMillis = 2000;

          function el(tag, text, className) {
            const e = document.createElement(tag);
            if (text !== undefined) e.textContent = String(text);
            if (className) e.className = className;
            return e;
          }

          function fill(id, rows, cells) {
            const body = document.querySelector("#" + id + " tbody");
            const made = rows.map(function (row) {
              const tr = document.createElement("tr");
              cells(row).forEach(function (cell) { tr.appendChild(cell); });
              return tr;
            });
            if (made.length === 0) {
              const tr = document.createElement("tr");
              const td = el("td", "none");
              td.colSpan = document.querySelectorAll("#" + id + " thead th").length;
              tr.appendChild(td);
              made.push(tr);
            }
            body.replaceChildren.apply(body, made);
          }

          function count(n) { return el("td", Number(n).toLocaleString("en"), "n"); }

          function list(items) {
            const td = el("td");
            td.textContent = items.join(", ");
            return td;
          }

          function ago(seconds) {
            return seconds === null || seconds === undefined ? "never" : Math.round(seconds) + " s ago";
          }

          // Draws `points` ([seconds, value]) as one SVG path over the 15 minutes before the last
        // point, or since the first when the agent started later (on the agent's clock,
        // whatever the browser's says).
        function chart(id, points, nowId, unit) {
          const svg = document.getElementById(id);
          const end = points.length ? points[points.length - 1][0] : 0;
          const start = points.length ? Math.max(end - 900, points[0][0]) : 0;
          const span = Math.max(end - start, 1);
          let peak = 0;
          points.forEach(function (p) { if (p[0] >= start && p[1] > peak) peak = p[1]; });
          const top = Math.max(peak, 1);
          let d = "";
          points.forEach(function (p) {
            if (p[0] < start) return;
            const x = ((p[0] - start) / span) * 300;
            const y = 98 - (p[1] / top) * 96;
            d += (d === "" ? "M" : "L") + x.toFixed(1) + " " + y.toFixed(1);
          });
          const path = document.createElementNS(svgNS, "path");
          path.setAttribute("d", d);
          svg.replaceChildren(path);
          const last = points.length ? points[points.length - 1][1] : 0;
          document.getElementById(nowId).textContent =
            "Now: " + Math.round(last).toLocaleString("en") + " " + unit + "; peak: " + Math.round(peak).toLocaleString("en") +
            " over the last " + Math.round(span) + " s";
        }

        function nameRow(first) {
            return function (r) {
              const counts = first === "lines" ? [count(r.lines), count(r.series)] : [count(r.series), count(r.lines)];
              return [el("td", r.name, "name")].concat(counts, [list(r.types), list(r.tag_keys)]);
            };
          }

          function draw(top) {
            const history = top.history || [];
            chart("chart-lines", history.map(function (p) { return [p.time, p.lines_per_second]; }), "now-lines", "lines/s");
            chart("chart-drops", history.map(function (p) { return [p.time, p.drops_per_second]; }), "now-drops", "drops/s");
            document.getElementById("cap-lines").textContent = "In the last " + Math.round(top.window_seconds) + " s";
            fill("t-lines", top.names_by_lines, nameRow("lines"));
            fill("t-series", top.names_by_series, nameRow("series"));
            fill("t-tags", top.tag_keys, function (k) {
              const values = k.top_values.map(function (v) { return v.value + " (" + v.series + ")"; });
              return [el("td", k.key, "name"), count(k.distinct_values), count(k.series), list(values)];
            });
            fill("t-refused", top.refused, function (r) {
              const td = el("td");
              const ul = el("ul");
              r.samples.forEach(function (s) {
                const li = el("li");
                li.appendChild(el("code", s.line + (s.truncated ? "..." : "")));
                li.appendChild(document.createTextNode(" (" + s.input + ", " + s.time + ")"));
                ul.appendChild(li);
              });
              td.appendChild(ul);
              return [el("td", r.reason), count(r.total), td];
            });
            fill("t-sinks", top.sinks || [], function (s) {
              return [el("td", s.name), el("td", ago(s.last_success_seconds_ago)), count(s.queued), count(s.errors)];
            });
            const mapping = top.mapping;
            document.getElementById("s-mapping").hidden = !mapping;
            if (mapping) {
              fill("t-rules", mapping.rules, function (r) { return [count(r.line), el("td", r.match), count(r.lines)]; });
              fill("t-mapping", mapping.series, function (m) { return [el("td", m.result), count(m.series)]; });
            }
          }

          function refresh() {
            fetch("/api/v1/top?limit=20", { cache: "no-store" })
              .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
              .then(function (top) {
                draw(top);
                document.getElementById("status").textContent =
                  "Updated " + new Date().toLocaleTimeString("en") + ", every " + refreshMillis / 1000 + " s.";
              })
              .catch(function (e) {
                document.getElementById("status").textContent = "Could not read /api/v1/top: " + e.message;
              })
              .finally(function () { setTimeout(refresh, refreshMillis); });
          }
          refresh();
        })();
        """#
}
