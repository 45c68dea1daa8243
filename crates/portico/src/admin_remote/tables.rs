//! Tables of Remote Services records as the API answers them (JSON), in the admin's
//! table style: upper-case headers, columns padded with two spaces, `-` for nothing.
//! Sites are listed as their tree, children indented under their parent.

use serde_json::Value;
use std::collections::HashSet;

/// What an answer holds, which decides its columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Site,
    Device,
    Member,
    Endpoint,
    Template,
    Application,
    Assignment,
    Connection,
    Audit,
}

/// The table of `value` (one record or an array of them).
pub fn table(kind: Kind, value: &Value) -> String {
    let rows: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let (header, lines): (&[&str], Vec<Vec<String>>) = match kind {
        Kind::Site => (
            &["SITE", "PARENT"],
            site_tree(&rows)
                .into_iter()
                .map(|(depth, v)| {
                    let name = format!("{}{}", "  ".repeat(depth), text(v, "name"));
                    vec![name, text(v, "parent")]
                })
                .collect(),
        ),
        Kind::Device => (
            &["DEVICE", "SITE", "DESCRIPTION"],
            map(&rows, |v| {
                vec![text(v, "name"), text(v, "site"), text(v, "description")]
            }),
        ),
        Kind::Member => (
            &["SITE", "USER", "ROLE"],
            map(&rows, |v| {
                vec![text(v, "site"), text(v, "user_name"), text(v, "role")]
            }),
        ),
        Kind::Endpoint => (
            &["ENDPOINT", "KIND", "BOUND TO", "STATE", "CLIENT"],
            map(&rows, |v| {
                vec![
                    text(v, "name"),
                    text(v, "kind"),
                    binding(v.get("bound_to")),
                    text(v, "state"),
                    text(v, "client_id"),
                ]
            }),
        ),
        Kind::Template => (
            &["TEMPLATE", "NAME", "PORT", "DIRECTION"],
            map(&rows, |v| {
                vec![
                    text(v, "id"),
                    text(v, "name"),
                    text(v, "default_port"),
                    text(v, "direction"),
                ]
            }),
        ),
        Kind::Application => (
            &[
                "APPLICATION",
                "TEMPLATE",
                "MAPPINGS",
                "TARGET ENDPOINT",
                "TIMEOUT",
            ],
            map(&rows, |v| {
                vec![
                    text(v, "name"),
                    text(v, "template"),
                    mappings(v.get("mappings")),
                    text(v, "target_endpoint"),
                    format!("{}s", text(v, "session_timeout_s")),
                ]
            }),
        ),
        Kind::Assignment => (
            &["DEVICE", "APPLICATION"],
            map(&rows, |v| vec![text(v, "device"), text(v, "application")]),
        ),
        Kind::Connection => (
            &[
                "ID",
                "USER",
                "DEVICE",
                "APPLICATION",
                "STARTED",
                "ENDS",
                "ENDED",
                "UP",
                "DOWN",
            ],
            map(&rows, |v| {
                let ended = match v.get("ended_ms").and_then(Value::as_i64) {
                    Some(ms) => format!("{} ({})", utc(ms), text(v, "end_reason")),
                    None => "-".into(),
                };
                vec![
                    text(v, "id"),
                    text(v, "user_name"),
                    text(v, "device"),
                    text(v, "application"),
                    time(v, "started_ms"),
                    time(v, "ends_ms"),
                    ended,
                    text(v, "bytes_up"),
                    text(v, "bytes_down"),
                ]
            }),
        ),
        Kind::Audit => (
            &["TIME", "ACTOR", "ACTION", "OBJECT", "DETAIL"],
            map(&rows, |v| {
                vec![
                    time(v, "at_ms"),
                    text(v, "actor"),
                    text(v, "action"),
                    text(v, "object"),
                    text(v, "detail"),
                ]
            }),
        ),
    };
    render(header, lines)
}

fn map(rows: &[&Value], line: impl Fn(&Value) -> Vec<String>) -> Vec<Vec<String>> {
    rows.iter().map(|v| line(v)).collect()
}

/// A field as text; `-` when it is missing, null or empty.
fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) if s.is_empty() => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    }
}

fn time(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_i64).map_or("-".into(), utc)
}

/// `{"kind":"service_site","name":"plant"}` → `site plant`.
fn binding(bound: Option<&Value>) -> String {
    let Some(bound) = bound else {
        return "-".into();
    };
    let what = match bound.get("kind").and_then(Value::as_str) {
        Some("device") => "device",
        Some("service_site") => "site",
        Some("service_user") => "user",
        _ => "?",
    };
    format!("{what} {}", text(bound, "name"))
}

/// Port mappings the way they are given: `LOCAL:HOST:PORT`, space-separated.
fn mappings(list: Option<&Value>) -> String {
    let Some(Value::Array(items)) = list else {
        return "-".into();
    };
    items
        .iter()
        .map(|m| {
            let host = text(m, "target_host");
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host
            };
            format!(
                "{}:{host}:{}",
                text(m, "local_port"),
                text(m, "target_port")
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Sites in tree order with their depth: each site followed by its sub-sites, siblings
/// in the order given. A site whose parent is not in the list starts a tree of its own;
/// a record can appear only once, whatever the parents say.
fn site_tree<'a>(rows: &[&'a Value]) -> Vec<(usize, &'a Value)> {
    let names: HashSet<String> = rows.iter().map(|v| text(v, "name")).collect();
    let mut out = Vec::with_capacity(rows.len());
    let mut placed = HashSet::new();
    // Depth-first with an explicit stack: (depth, site), children pushed in reverse.
    let mut stack: Vec<(usize, &Value)> = rows
        .iter()
        .rev()
        .filter(|v| {
            v.get("parent")
                .and_then(Value::as_str)
                .is_none_or(|p| !names.contains(p))
        })
        .map(|v| (0, *v))
        .collect();
    let mut visit = |stack: &mut Vec<(usize, &'a Value)>, out: &mut Vec<(usize, &'a Value)>| {
        while let Some((depth, site)) = stack.pop() {
            let name = text(site, "name");
            if !placed.insert(name.clone()) {
                continue;
            }
            out.push((depth, site));
            for child in rows.iter().rev() {
                if child.get("parent").and_then(Value::as_str) == Some(name.as_str()) {
                    stack.push((depth + 1, *child));
                }
            }
        }
    };
    visit(&mut stack, &mut out);
    // Sites only reachable through a cycle (which the store does not make) still show.
    for v in rows {
        stack.push((0, *v));
        visit(&mut stack, &mut out);
    }
    out
}

fn render(header: &[&str], lines: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for line in &lines {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header = header.iter().map(|h| h.to_string()).collect();
    for cells in std::iter::once(header).chain(lines) {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(padded.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Unix milliseconds as `2026-11-22 10:26:49Z`.
pub fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, day_secs) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        day_secs / 3600,
        day_secs % 3600 / 60,
        day_secs % 60
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly on purpose.
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_are_utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00Z");
        assert_eq!(utc(1_795_343_209_999), "2026-11-22 10:26:49Z");
    }

    #[test]
    fn sites_list_as_an_indented_tree() {
        let sites = json!([
            {"name": "hall-1", "parent": "plant"},
            {"name": "other", "parent": null},
            {"name": "line-3", "parent": "hall-1"},
            {"name": "plant", "parent": null},
            {"name": "hall-2", "parent": "plant"},
            {"name": "orphan", "parent": "not-listed"},
        ]);
        let out = table(Kind::Site, &sites);
        let names: Vec<&str> = out
            .lines()
            .skip(1)
            .map(|l| l.split("  ").find(|s| !s.is_empty()).unwrap_or(""))
            .collect();
        assert_eq!(
            names,
            ["other", "plant", "hall-1", "line-3", "hall-2", "orphan"],
            "{out}"
        );
        assert!(out.contains("\n    line-3  hall-1\n"), "{out}");
    }

    #[test]
    fn a_cycle_lists_each_site_once() {
        let sites = json!([
            {"name": "a", "parent": "b"},
            {"name": "b", "parent": "a"},
        ]);
        let out = table(Kind::Site, &sites);
        assert_eq!(out.lines().count(), 3, "{out}");
    }

    #[test]
    fn applications_show_their_mappings_as_given() {
        let app = json!({
            "name": "ssh", "template": "ssh", "target_endpoint": null, "session_timeout_s": 3600,
            "mappings": [
                {"local_port": 2222, "target_host": "127.0.0.1", "target_port": 22},
                {"local_port": 2223, "target_host": "::1", "target_port": 22},
            ],
        });
        let out = table(Kind::Application, &app);
        assert!(
            out.contains("2222:127.0.0.1:22 2223:[::1]:22") && out.contains("3600s"),
            "{out}"
        );
    }

    #[test]
    fn endpoints_name_what_they_are_bound_to() {
        let ep = json!([{"name": "gw", "kind": "service", "state": "pending",
            "bound_to": {"kind": "service_site", "name": "plant"}, "client_id": null}]);
        let out = table(Kind::Endpoint, &ep);
        assert!(
            out.contains("site plant") && out.contains("pending"),
            "{out}"
        );
    }
}
