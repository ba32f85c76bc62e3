//! The Markdown reference of the ExrScan CRD, generated from its OpenAPI schema so that it
//! cannot disagree with what the API server enforces (committed as `docs/crd-reference.md`).

use std::fmt::Write;

use kube::CustomResourceExt;
use serde_json::Value;

use crate::{Error, ExrScan};

/// Renders the reference: the resource's names, printer columns, then one table per object
/// of the schema (field, type, default, constraints, description) and its CEL rules.
pub fn markdown() -> Result<String, Error> {
    let crd = ExrScan::crd();
    let version = crd.spec.versions.first().ok_or(Error::NoSchema)?;
    let schema = version.schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref()).ok_or(Error::NoSchema)?;
    let schema = serde_json::to_value(schema).map_err(|_| Error::NoSchema)?;

    let mut out = String::new();
    let names = &crd.spec.names;
    let _ = writeln!(out, "# ExrScan reference\n");
    let _ =
        writeln!(out, "<!-- Generated from the CRD schema by `exrscan-operator crd --reference`; do not edit. -->\n");
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(out, "| Group / version | `{}/{}` |", crd.spec.group, version.name);
    let _ = writeln!(out, "| Kind | `{}` (plural `{}`) |", names.kind, names.plural);
    let short = names.short_names.clone().unwrap_or_default().join("`, `");
    let _ = writeln!(out, "| Short names | `{short}` |");
    let _ = writeln!(out, "| Scope | {} |", crd.spec.scope);
    let _ = writeln!(out, "| Subresources | status |\n");
    if let Some(d) = schema.get("description").and_then(Value::as_str) {
        let _ = writeln!(out, "{d}\n");
    }

    if let Some(columns) = &version.additional_printer_columns {
        let _ = writeln!(out, "## `kubectl get exs` columns\n");
        let _ = writeln!(out, "| Column | Type | JSON path |\n|---|---|---|");
        for c in columns {
            let _ = writeln!(out, "| {} | {} | `{}` |", c.name, c.type_, c.json_path);
        }
        out.push('\n');
    }

    rules(&mut out, "the resource", &schema);
    for root in ["spec", "status"] {
        if let Some(s) = schema.pointer(&format!("/properties/{root}")) {
            object(&mut out, root, s);
        }
    }
    Ok(out)
}

/// Writes the table of one object and recurses into its object-typed fields.
fn object(out: &mut String, path: &str, schema: &Value) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else { return };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let _ = writeln!(out, "## `{path}`\n");
    if let Some(d) = schema.get("description").and_then(Value::as_str) {
        let _ = writeln!(out, "{}\n", one_line(d));
    }
    let _ = writeln!(out, "| Field | Type | Required | Default | Constraints | Description |");
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    let mut nested = Vec::new();
    for (name, field) in props {
        let ty = type_name(field);
        let default = field.get("default").map(|d| format!("`{d}`")).unwrap_or_default();
        let req = if required.contains(&name.as_str()) { "yes" } else { "" };
        let desc = field.get("description").and_then(Value::as_str).map(one_line).unwrap_or_default();
        let _ = writeln!(out, "| `{name}` | {ty} | {req} | {default} | {} | {desc} |", constraints(field));
        let child = format!("{path}.{name}");
        if field.get("properties").is_some() {
            nested.push((child, field));
        } else if let Some(items) = field.get("items").filter(|i| i.get("properties").is_some()) {
            nested.push((format!("{child}[]"), items));
        }
    }
    out.push('\n');
    rules(out, &format!("`{path}`"), schema);
    for (name, field) in props {
        rules(out, &format!("`{path}.{name}`"), field);
    }
    for (child, field) in nested {
        // Kubernetes' own types (resources, scheduling, conditions) are documented upstream.
        let upstream = [".resources", ".affinity", ".tolerations[]", ".imagePullSecrets[]", ".conditions[]"];
        if upstream.iter().any(|t| child.ends_with(t)) {
            continue;
        }
        object(out, &child, field);
    }
}

/// Lists an object's CEL rules with the message the API server returns.
fn rules(out: &mut String, what: &str, schema: &Value) {
    let Some(rules) = schema.get("x-kubernetes-validations").and_then(Value::as_array) else { return };
    let _ = writeln!(out, "Rules on {what} (CEL, checked by the API server):\n");
    for r in rules {
        let rule = r.get("rule").and_then(Value::as_str).unwrap_or_default();
        let msg = r.get("message").and_then(Value::as_str).unwrap_or_default();
        let _ = writeln!(out, "- `{}` — {msg}", rule.replace('|', "\\|"));
    }
    out.push('\n');
}

fn type_name(field: &Value) -> String {
    let ty = field.get("type").and_then(Value::as_str).unwrap_or("object");
    let base = match (ty, field.get("format").and_then(Value::as_str)) {
        ("array", _) => format!("[]{}", field.get("items").map(type_name).unwrap_or_default()),
        ("object", _) if field.get("additionalProperties").is_some_and(Value::is_object) => {
            format!("map[string]{}", field.get("additionalProperties").map(type_name).unwrap_or_default())
        }
        (t, Some(f)) => format!("{t} ({f})"),
        (t, None) => t.to_string(),
    };
    if field.get("x-kubernetes-int-or-string").is_some() { "int or string".to_string() } else { base }
}

fn constraints(field: &Value) -> String {
    let mut c = Vec::new();
    let get = |k: &str| {
        field.get(k).map(|v| match v.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            _ => v.to_string(),
        })
    };
    match (get("minimum"), get("maximum")) {
        (Some(a), Some(b)) => c.push(format!("{a}..{b}")),
        (Some(a), None) => c.push(format!("≥ {a}")),
        (None, Some(b)) => c.push(format!("≤ {b}")),
        _ => {}
    }
    match (get("minLength"), get("maxLength")) {
        (Some(a), Some(b)) => c.push(format!("length {a}..{b}")),
        (Some(a), None) => c.push(format!("length ≥ {a}")),
        (None, Some(b)) => c.push(format!("length ≤ {b}")),
        _ => {}
    }
    if let Some(m) = get("maxItems") {
        c.push(format!("≤ {m} items"));
    }
    if let Some(m) = get("maxProperties") {
        c.push(format!("≤ {m} entries"));
    }
    if let Some(values) = field.get("enum").and_then(Value::as_array) {
        let v: Vec<String> = values.iter().filter_map(Value::as_str).map(|s| format!("`{s}`")).collect();
        c.push(format!("one of {}", v.join(", ")));
    }
    c.join("; ")
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|")
}
