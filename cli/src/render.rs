//! Human-readable output: aligned tables and `key: value` views of the
//! API's JSON. Only the default output goes through here; `--json` prints
//! the server's body untouched.
//!
//! Everything reads fields by name and tolerates absent ones (shown as
//! `-`), so a newer port25d with more fields, or an older one with fewer,
//! still renders.

use serde_json::Value;

/// Columns padded to their widest cell, two spaces apart; the last column is
/// not padded (it is free text such as a note or an error).
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header_row: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header_row).chain(rows) {
        let last = row.len().saturating_sub(1);
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i == last {
                line.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `key: value` lines with the values aligned.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    pairs.iter().map(|(k, v)| format!("{:<width$} {v}\n", format!("{k}:"))).collect()
}

/// A JSON value as one table cell: strings without quotes, null and absent
/// as `-`, arrays comma-joined. Control characters are escaped so that a
/// stored value cannot move the cursor or forge lines in a terminal.
pub fn cell(v: &Value) -> String {
    let text = match v {
        Value::Null => "-".to_owned(),
        Value::String(s) if s.is_empty() => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Bool(true) => "yes".to_owned(),
        Value::Bool(false) => "no".to_owned(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) if items.is_empty() => "-".to_owned(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        Value::Object(_) => v.to_string(),
    };
    if text.chars().any(char::is_control) {
        text.chars().flat_map(char::escape_default).collect()
    } else {
        text
    }
}

/// The first of `keys` present (and not null) in `v`.
fn first<'a>(v: &'a Value, keys: &[&str]) -> &'a Value {
    keys.iter().map(|k| &v[*k]).find(|x| !x.is_null()).unwrap_or(&Value::Null)
}

/// The scope of an exemption: `all` when it has no switch list.
fn scope(v: &Value) -> String {
    match &v["switches"] {
        Value::Null => "all".to_owned(),
        other => cell(other),
    }
}

/// The array under `key`, or nothing.
pub fn items<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v[key].as_array().map(Vec::as_slice).unwrap_or_default()
}

const EXEMPTION_HEADERS: [&str; 5] = ["ID", "SUBSCRIBER", "SWITCHES", "EXPIRES", "NOTE"];

fn exemption_row(e: &Value) -> Vec<String> {
    vec![cell(&e["id"]), cell(&e["subscriber"]), scope(e), expires(e), cell(&e["note"])]
}

fn expires(e: &Value) -> String {
    match &e["expires_at"] {
        Value::Null => "never".to_owned(),
        other => cell(other),
    }
}

/// `GET /v1/exemptions`: ID SUBSCRIBER SWITCHES EXPIRES NOTE.
pub fn exemption_list(list: &[Value]) -> String {
    let rows: Vec<Vec<String>> = list.iter().map(exemption_row).collect();
    table(&EXEMPTION_HEADERS, &rows)
}

/// One exemption, every field on its own line; fields this version does
/// not know about follow the known ones.
pub fn exemption(e: &Value) -> String {
    const KNOWN: [&str; 7] = ["id", "subscriber", "switches", "note", "external_id", "created_at", "expires_at"];
    let mut pairs = vec![
        ("id", cell(&e["id"])),
        ("subscriber", cell(&e["subscriber"])),
        ("switches", scope(e)),
        ("note", cell(&e["note"])),
        ("external_id", cell(&e["external_id"])),
        ("created_at", cell(&e["created_at"])),
        ("expires_at", expires(e)),
    ];
    if let Some(obj) = e.as_object() {
        for (k, v) in obj {
            if !KNOWN.contains(&k.as_str()) {
                pairs.push((k.as_str(), cell(v)));
            }
        }
    }
    fields(&pairs)
}

/// `GET /v1/switches`: DPID VERSION STATE IN_SYNC POLICY FLOWS PEER LAST_ERROR.
pub fn switches(list: &[Value]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|s| {
            vec![
                cell(&s["dpid"]),
                cell(&s["openflow_version"]),
                cell(&s["state"]),
                cell(&s["in_sync"]),
                cell(&s["policy_version"]),
                cell(&s["flow_count"]),
                cell(&s["peer"]),
                cell(&s["last_error"]),
            ]
        })
        .collect();
    table(&["DPID", "VERSION", "STATE", "IN_SYNC", "POLICY", "FLOWS", "PEER", "LAST_ERROR"], &rows)
}

/// `GET /v1/lookup`: the verdicts, the covering exemptions, and per switch
/// whether the flows are in place.
pub fn lookup(v: &Value) -> String {
    let verdict = if v["verdict"].is_object() { &v["verdict"] } else { v };
    let mut out = fields(&[
        ("ip", cell(first(v, &["ip", "address"]))),
        ("outbound", cell(&verdict["outbound"])),
        ("inbound", cell(&verdict["inbound"])),
    ]);
    let exemptions = items(v, "exemptions");
    out.push_str("\nexemptions covering it:\n");
    if exemptions.is_empty() {
        out.push_str("  none\n");
    } else {
        out.push_str(&indent(&exemption_list(exemptions)));
    }
    let switches = items(v, "switches");
    out.push_str("\nswitches:\n");
    if switches.is_empty() {
        out.push_str("  none connected\n");
    } else {
        let rows: Vec<Vec<String>> = switches
            .iter()
            .map(|s| {
                vec![
                    cell(&s["dpid"]),
                    cell(&s["state"]),
                    cell(first(s, &["flows_in_place", "in_place"])),
                    cell(first(s, &["outbound", "verdict"])),
                    cell(&s["inbound"]),
                ]
            })
            .collect();
        out.push_str(&indent(&table(&["DPID", "STATE", "FLOWS_IN_PLACE", "OUTBOUND", "INBOUND"], &rows)));
    }
    out
}

/// `GET /v1/audit`: one line per change, oldest first as the server sends it.
pub fn audit(list: &[Value]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|a| {
            let record = if a["after"].is_null() { &a["before"] } else { &a["after"] };
            vec![
                cell(first(a, &["at", "time", "timestamp"])),
                cell(&a["action"]),
                cell(first(a, &["exemption_id", "id"]).or_else_in(&record["id"])),
                cell(first(a, &["subscriber"]).or_else_in(&record["subscriber"])),
                cell(first(a, &["token", "token_name", "actor"])),
                cell(first(a, &["source", "source_addr", "peer"])),
                cell(&a["request_id"]),
            ]
        })
        .collect();
    table(&["TIME", "ACTION", "ID", "SUBSCRIBER", "TOKEN", "SOURCE", "REQUEST_ID"], &rows)
}

trait OrElseIn {
    fn or_else_in<'a>(&'a self, other: &'a Value) -> &'a Value;
}

impl OrElseIn for Value {
    fn or_else_in<'a>(&'a self, other: &'a Value) -> &'a Value {
        if self.is_null() {
            other
        } else {
            self
        }
    }
}

/// `PUT /v1/exemptions` reply: counts, then what is (or would be) created
/// and deleted. Kept records are only counted: a sync of thousands of
/// unchanged records should not print thousands of lines.
pub fn sync(v: &Value, dry_run: bool) -> String {
    let (create, delete, keep) = (items(v, "create"), items(v, "delete"), items(v, "keep"));
    let count = |key: &str, list: &[Value]| match &v[key] {
        Value::Number(n) => n.to_string(),
        _ => list.len().to_string(),
    };
    let mut out = format!(
        "{}: create {}, delete {}, keep {}\n",
        if dry_run { "dry run, nothing changed" } else { "applied" },
        count("created", create),
        count("deleted", delete),
        count("kept", keep),
    );
    if let Some(version) = v["policy_version"].as_u64() {
        out.push_str(&format!("policy_version: {version}\n"));
    }
    if !create.is_empty() || !delete.is_empty() {
        let rows: Vec<Vec<String>> = create
            .iter()
            .map(|e| ("create", e))
            .chain(delete.iter().map(|e| ("delete", e)))
            .map(|(change, e)| {
                vec![
                    change.to_owned(),
                    cell(&e["id"]),
                    cell(&e["subscriber"]),
                    scope(e),
                    expires(e),
                    cell(&e["external_id"]),
                    cell(&e["note"]),
                ]
            })
            .collect();
        out.push('\n');
        out.push_str(&table(&["CHANGE", "ID", "SUBSCRIBER", "SWITCHES", "EXPIRES", "EXTERNAL_ID", "NOTE"], &rows));
    }
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{cell, exemption_list, table};

    #[test]
    fn table_aligns_columns_and_leaves_the_last_unpadded() {
        let t = table(&["ID", "NAME", "NOTE"], &[vec!["1".into(), "a".into(), "x".into()], vec![
            "10".into(),
            "longer".into(),
            "".into(),
        ]]);
        assert_eq!(t, "ID  NAME    NOTE\n1   a       x\n10  longer\n");
    }

    #[test]
    fn cells_escape_control_characters() {
        assert_eq!(cell(&json!("a\u{1b}[2Jb")), "a\\u{1b}[2Jb");
        assert_eq!(cell(&json!(null)), "-");
        assert_eq!(cell(&json!(["a", "b"])), "a,b");
    }

    #[test]
    fn exemption_rows_show_scope_and_expiry() {
        let list = [
            json!({"id":1,"subscriber":"203.0.113.7/32","switches":null,"note":"t"}),
            json!({"id":2,"subscriber":"2001:db8::/48","switches":["0000000000000001"],"expires_at":"2030-01-01T00:00:00Z"}),
        ];
        let t = exemption_list(&list);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[1].starts_with("1   203.0.113.7/32  all"), "{t}");
        assert!(lines[1].contains("never") && lines[1].ends_with('t'), "{t}");
        assert!(lines[2].contains("0000000000000001") && lines[2].contains("2030-01-01T00:00:00Z"), "{t}");
    }
}
