//! `docs/api.md`, the API reference in the repository, is generated from the
//! OpenAPI document the server serves at `/openapi.json`; the test below
//! regenerates it and fails when the file differs, so the two never drift.
//! After changing an endpoint, rewrite the file with
//! `UPDATE_API_DOC=1 cargo test --release -p commerce api_reference`.

use std::fmt::Write;

use serde_json::Value;

const INTRO: &str = "\
# API reference

Generated from the OpenAPI document the server serves at `/openapi.json` (rendered at `/docs`);
a test (`host/src/http/api_reference.rs`) fails when this file and the document differ. After
changing an endpoint: `UPDATE_API_DOC=1 cargo test --release -p commerce api_reference`.

Conventions: JSON bodies with `snake_case` fields; ids are positive 64-bit integers; money and
points are integers in won; times are RFC 3339 UTC strings. Every error is
`application/problem+json` (RFC 9457) with a stable `code` (listed per endpoint below) and
`status`, `title`, `detail`. Admin endpoints take `Authorization: Bearer <token>`. Mutating
endpoints marked *idempotent* take an `Idempotency-Key` header. Policy slots and their
configuration are described in [policies.md](policies.md).
";

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The reference for `doc`, an OpenAPI document as JSON.
pub fn render(doc: &Value) -> String {
    let mut out = String::from(INTRO);
    let tags: Vec<(String, String)> = doc["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|tag| (text(&tag["name"]), text(&tag["description"])))
        .collect();
    let paths = doc["paths"].as_object().cloned().unwrap_or_default();
    for (tag, description) in &tags {
        let _ = write!(out, "\n## {tag}\n\n{description}.\n");
        for (path, item) in &paths {
            for method in METHODS {
                let operation = &item[method];
                let tagged = operation["tags"]
                    .as_array()
                    .is_some_and(|tags| tags.iter().any(|t| t == tag.as_str()));
                if tagged {
                    operation_section(&mut out, method, path, operation);
                }
            }
        }
    }
    out.push_str("\n## Schemas\n");
    for (name, schema) in doc["components"]["schemas"]
        .as_object()
        .into_iter()
        .flatten()
    {
        schema_section(&mut out, name, schema);
    }
    out
}

fn operation_section(out: &mut String, method: &str, path: &str, operation: &Value) {
    let _ = write!(out, "\n### `{} {path}`\n\n", method.to_uppercase());
    for part in [&operation["summary"], &operation["description"]] {
        if let Some(text) = part.as_str().filter(|text| !text.is_empty()) {
            let _ = write!(out, "{}\n\n", one_paragraph(text));
        }
    }
    let parameters = operation["parameters"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !parameters.is_empty() {
        out.push_str("| parameter | in | type | required | meaning |\n|---|---|---|---|---|\n");
        for parameter in &parameters {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} |",
                text(&parameter["name"]),
                text(&parameter["in"]),
                ty(&parameter["schema"]),
                if parameter["required"] == true {
                    "yes"
                } else {
                    "no"
                },
                cell(&text(&parameter["description"]))
            );
        }
        out.push('\n');
    }
    if let Some(content) = operation["requestBody"]["content"].as_object() {
        let bodies: Vec<String> = content
            .iter()
            .map(|(kind, body)| format!("`{kind}` {}", ty(&body["schema"])))
            .collect();
        let _ = write!(out, "Body: {}\n\n", bodies.join(", or "));
    }
    out.push_str("| status | body | meaning |\n|---|---|---|\n");
    for (status, response) in operation["responses"].as_object().into_iter().flatten() {
        let bodies: Vec<String> = response["content"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(kind, body)| match kind.as_str() {
                "application/json" => ty(&body["schema"]),
                _ => format!("`{kind}` {}", ty(&body["schema"])),
            })
            .collect();
        let _ = writeln!(
            out,
            "| {status} | {} | {} |",
            bodies.join(", "),
            cell(&text(&response["description"]))
        );
    }
}

fn schema_section(out: &mut String, name: &str, schema: &Value) {
    let _ = write!(out, "\n### {name}\n\n");
    if let Some(description) = schema["description"].as_str() {
        let _ = write!(out, "{}\n\n", one_paragraph(description));
    }
    let Some(properties) = schema["properties"].as_object() else {
        let _ = writeln!(out, "{}", ty(schema));
        return;
    };
    let required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    out.push_str("| field | type | meaning |\n|---|---|---|\n");
    for (field, property) in properties {
        let optional = if required.contains(&field.as_str()) {
            ""
        } else {
            " (optional)"
        };
        let _ = writeln!(
            out,
            "| `{field}` | {}{optional} | {} |",
            ty(property),
            cell(&text(&property["description"]))
        );
    }
}

/// A schema's type in a few words: `string`, `[Line]`, `integer (int64)?`, ...
fn ty(schema: &Value) -> String {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap_or(reference);
        return format!("[{name}](#{})", name.to_lowercase());
    }
    for combinator in ["oneOf", "anyOf", "allOf"] {
        if let Some(options) = schema[combinator].as_array() {
            let options: Vec<String> = options.iter().map(ty).collect();
            return options.join(" \\| ");
        }
    }
    if let Some(cases) = schema["enum"].as_array() {
        let cases: Vec<String> = cases.iter().map(|case| format!("`{case}`")).collect();
        return cases.join(" \\| ");
    }
    let (kind, nullable) = match &schema["type"] {
        Value::String(kind) => (kind.clone(), false),
        Value::Array(kinds) => {
            let named: Vec<&str> = kinds
                .iter()
                .filter_map(Value::as_str)
                .filter(|kind| *kind != "null")
                .collect();
            (named.join(" \\| "), kinds.len() > named.len())
        }
        _ => ("any".to_owned(), false),
    };
    let shown = match kind.as_str() {
        "array" => format!("[{}]", ty(&schema["items"])),
        "object" => match &schema["additionalProperties"] {
            Value::Object(_) => format!("{{string: {}}}", ty(&schema["additionalProperties"])),
            _ => "object".to_owned(),
        },
        _ => match schema["format"].as_str() {
            Some(format) => format!("{kind} ({format})"),
            None => kind,
        },
    };
    if nullable {
        format!("{shown} or null")
    } else {
        shown
    }
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

/// A description on one line, for a paragraph.
fn one_paragraph(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A description fit for a table cell.
fn cell(text: &str) -> String {
    one_paragraph(text).replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_api_md_is_the_openapi_document() {
        let doc = serde_json::to_value(super::super::openapi()).expect("the document serializes");
        let rendered = render(&doc);
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/api.md");
        if std::env::var_os("UPDATE_API_DOC").is_some() {
            std::fs::write(&path, &rendered).expect("docs/api.md is writable");
        }
        let written = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            written == rendered,
            "docs/api.md differs from /openapi.json; rewrite it with \
             `UPDATE_API_DOC=1 cargo test --release -p commerce api_reference` and review the diff"
        );
        // Every path and every documented error code appears in it.
        for (path, _) in doc["paths"].as_object().into_iter().flatten() {
            assert!(written.contains(&format!(" {path}`")), "{path}");
        }
        for code in [
            "INVALID_CONFIG",
            "UNKNOWN_SLOT",
            "NO_SHADOW",
            "INVALID_COMPONENT",
        ] {
            assert!(written.contains(code), "{code}");
        }
    }

    /// Every relative link of the repository's Markdown files names a file
    /// or folder of the repository: a clone has nothing else.
    #[test]
    fn every_relative_link_in_the_docs_resolves_in_a_clone() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut files = vec![
            root.join("README.md"),
            root.join("plugins/README.md"),
            root.join("wit/README.md"),
            root.join("bench/report.md"),
        ];
        for entry in std::fs::read_dir(root.join("docs")).expect("a docs folder") {
            files.push(entry.expect("a readable folder").path());
        }
        let mut broken = Vec::new();
        let mut checked = 0;
        for file in files
            .iter()
            .filter(|file| file.extension().is_some_and(|ext| ext == "md"))
        {
            let Ok(text) = std::fs::read_to_string(file) else {
                continue;
            };
            for target in text
                .split("](")
                .skip(1)
                .filter_map(|rest| rest.split(')').next())
            {
                let target = target.split('#').next().unwrap_or_default().trim();
                if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                checked += 1;
                let folder = file.parent().expect("a file lies in a folder");
                let resolved = folder.join(target);
                // Inside the repository, and there.
                let inside = resolved
                    .canonicalize()
                    .ok()
                    .zip(root.canonicalize().ok())
                    .is_some_and(|(resolved, root)| resolved.starts_with(root));
                if !inside {
                    broken.push(format!("{}: {target}", file.display()));
                }
            }
        }
        assert!(checked > 20, "only {checked} links were found");
        assert!(
            broken.is_empty(),
            "links that a clone cannot follow:\n{}",
            broken.join("\n")
        );
    }
}
