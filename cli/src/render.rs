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
/// the verdict there and whether its flows are in place.
pub fn lookup(v: &Value) -> String {
    let mut out = fields(&[
        ("ip", cell(&v["ip"])),
        ("outbound", cell(&v["outbound"])),
        ("inbound", cell(&v["inbound"])),
        ("policy_version", cell(&v["policy_version"])),
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
                    cell(&s["outbound"]),
                    cell(&s["inbound"]),
                    cell(&s["flows_in_place"]),
                    cell(&s["policy_version"]),
                    cell(&s["exempted_by"]),
                ]
            })
            .collect();
        let headers = ["DPID", "STATE", "OUTBOUND", "INBOUND", "FLOWS_IN_PLACE", "POLICY", "EXEMPTED_BY"];
        out.push_str(&indent(&table(&headers, &rows)));
    }
    out
}

/// `GET /v1/audit`: one line per change, newest first as the server sends
/// it.
pub fn audit(v: &Value) -> String {
    let rows: Vec<Vec<String>> = items(v, "entries")
        .iter()
        .map(|a| {
            vec![
                cell(&a["seq"]),
                cell(&a["at"]),
                cell(&a["action"]),
                cell(&a["exemption_id"]),
                cell(&a["subscriber"]),
                cell(&a["actor"]),
                cell(&a["source"]),
                cell(&a["request_id"]),
            ]
        })
        .collect();
    table(&["SEQ", "TIME", "ACTION", "ID", "SUBSCRIBER", "ACTOR", "SOURCE", "REQUEST_ID"], &rows)
}

/// `PUT /v1/exemptions` reply: counts and the policy version, then what is
/// (or would be) created, updated and deleted. Kept records are only
/// counted: a sync of thousands of unchanged records should not print
/// thousands of lines.
pub fn sync(v: &Value) -> String {
    let counts = &v["counts"];
    let mut out = if v["dry_run"] == true {
        "dry run, nothing changed:".to_owned()
    } else {
        format!("applied as policy version {}:", cell(&v["policy_version"]))
    };
    for key in ["create", "update", "delete", "keep"] {
        let n = counts[key].as_u64().unwrap_or(items(v, key).len() as u64);
        out.push_str(&format!(" {key} {n}"));
        out.push(if key == "keep" { '\n' } else { ',' });
    }
    let changes = items(v, "create")
        .iter()
        .map(|e| ("create", e))
        .chain(items(v, "update").iter().map(|u| ("update", &u["after"])))
        .chain(items(v, "delete").iter().map(|e| ("delete", e)));
    let rows: Vec<Vec<String>> = changes
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
    if !rows.is_empty() {
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
        let t = table(
            &["ID", "NAME", "NOTE"],
            &[vec!["1".into(), "a".into(), "x".into()], vec!["10".into(), "longer".into(), "".into()]],
        );
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
