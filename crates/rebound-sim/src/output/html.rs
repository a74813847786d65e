//! The HTML report: one self-contained page linking every chart and file.

use std::fmt::Write as _;

use crate::report::{Cell, ScenarioReport};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The page for `reports`.
pub fn page(reports: &[ScenarioReport]) -> String {
    let mut h = String::new();
    h.push_str(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>rebound simulate — report</title>\n<style>\n\
         body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}\n\
         h1{font-size:1.6em}h2{margin-top:2.2em;border-bottom:1px solid #ddd;padding-bottom:.2em}\n\
         table{border-collapse:collapse;margin:.8em 0;font-size:.9em}\n\
         th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}th{background:#f5f5f5}\n\
         td.t{text-align:left}.ok{color:#1a7f37}.bad{color:#c62828}\n\
         .src{color:#666;font-size:.9em}img{max-width:100%;border:1px solid #eee;margin:.5em 0}\n\
         nav a{margin-right:1em}code{background:#f5f5f5;padding:0 .2em}\n\
         </style>\n</head>\n<body>\n<h1>rebound simulate</h1>\n\
         <p>What retry policies do to a struggling system: each scenario reproduces a published result by \
         driving the real <code>rebound</code> policy objects in virtual time.</p>\n<nav>",
    );
    for r in reports {
        let _ = write!(h, "<a href=\"#{0}\">{0}</a>", esc(&r.scenario));
    }
    h.push_str("</nav>\n<h2>Claims</h2>\n<table>\n<tr><th>scenario</th><th>claim</th><th>measured</th><th></th></tr>\n");
    for r in reports {
        for c in &r.checks {
            let _ = writeln!(
                h,
                "<tr><td class=\"t\">{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td><td class=\"{}\">{}</td></tr>",
                esc(&r.scenario),
                esc(&c.claim),
                esc(&c.measured),
                if c.holds { "ok" } else { "bad" },
                if c.holds { "✔ holds" } else { "✘ differs" }
            );
        }
    }
    h.push_str("</table>\n");
    for r in reports {
        let s = esc(&r.scenario);
        let _ = writeln!(h, "<h2 id=\"{s}\">{s} — {}</h2>", esc(&r.title));
        let _ = writeln!(h, "<p class=\"src\">{}</p>", esc(&r.source));
        let _ = writeln!(h, "<p>{}</p>", esc(&r.setup));
        let _ = writeln!(
            h,
            "<p class=\"src\">seed {}, {} run(s) per point</p>",
            r.seed, r.runs
        );
        for c in &r.charts {
            let _ = writeln!(
                h,
                "<p><img src=\"{s}/{0}.svg\" alt=\"{1}\"><br><a href=\"{s}/{0}.svg\">SVG</a> · <a href=\"{s}/{0}.png\">PNG</a> · <a href=\"{s}/{0}-series.csv\">data (CSV)</a></p>",
                esc(&c.name),
                esc(&c.title)
            );
        }
        for t in &r.tables {
            let _ = writeln!(h, "<h3>{}</h3>\n<table>\n<tr>", esc(&t.title));
            for c in &t.columns {
                let _ = write!(h, "<th>{}</th>", esc(c));
            }
            h.push_str("</tr>\n");
            for row in &t.rows {
                h.push_str("<tr>");
                for c in row {
                    let class = if matches!(c, Cell::Text(_)) {
                        " class=\"t\""
                    } else {
                        ""
                    };
                    let _ = write!(h, "<td{class}>{}</td>", esc(&c.display()));
                }
                h.push_str("</tr>\n");
            }
            let _ = writeln!(
                h,
                "</table>\n<p><a href=\"{s}/{}.csv\">CSV</a></p>",
                esc(&t.name)
            );
        }
        for n in &r.notes {
            let _ = writeln!(h, "<p class=\"src\">Note: {}</p>", esc(n));
        }
        let _ = writeln!(
            h,
            "<p><a href=\"{s}/report.json\">everything as JSON</a></p>"
        );
    }
    h.push_str("</body>\n</html>\n");
    h
}
