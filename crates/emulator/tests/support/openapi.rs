//! A small validator for the Swagger 2.0 schema subset Iterable's spec uses for responses:
//! `$ref`, `type`, `properties`, `required`, `items`, `enum`, `format`, `uniqueItems`.
#![allow(dead_code)]

use serde_json::Value;

/// The vendored spec.
pub fn spec() -> Value {
    let text = include_str!("../../spec/iterable-openapi.json");
    serde_json::from_str(text).expect("the vendored spec is JSON")
}

/// The response schema of `method path` for `status`, as in the spec (`None` when the spec
/// gives that status no schema).
pub fn response_schema<'a>(
    spec: &'a Value,
    method: &str,
    path: &str,
    status: u16,
) -> Option<&'a Value> {
    spec["paths"][path][method.to_lowercase()]["responses"][status.to_string()].get("schema")
}

/// Every way `value` departs from `schema`, as `path: problem` lines.
pub fn validate(spec: &Value, schema: &Value, value: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(spec, schema, value, "$", &mut errors);
    errors
}

fn resolve<'a>(
    spec: &'a Value,
    schema: &'a Value,
    errors: &mut Vec<String>,
    at: &str,
) -> Option<&'a Value> {
    match schema.get("$ref").and_then(Value::as_str) {
        None => Some(schema),
        Some(r) => match r.strip_prefix("#/definitions/") {
            Some(name) if spec["definitions"].get(name).is_some() => {
                Some(&spec["definitions"][name])
            }
            _ => {
                errors.push(format!("{at}: unresolvable $ref {r}"));
                None
            }
        },
    }
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        _ => true,
    }
}

fn check(spec: &Value, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let Some(schema) = resolve(spec, schema, errors, at) else {
        return;
    };
    if let Some(t) = schema.get("type").and_then(Value::as_str)
        && !type_ok(t, v)
    {
        errors.push(format!("{at}: expected {t}, got {v}"));
        return;
    }
    // int32: the spec says so for ListDetails.createdAt, but real values are epoch
    // milliseconds (iterable-api.md 3.1), so the width is not checked; integer-ness is.
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        errors.push(format!(
            "{at}: {v} is not one of {}",
            Value::Array(allowed.clone())
        ));
    }
    if let Some(obj) = v.as_object() {
        for r in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(k) = r.as_str()
                && !obj.contains_key(k)
            {
                errors.push(format!("{at}: missing required {k}"));
            }
        }
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (k, sub) in props {
                if let Some(x) = obj.get(k) {
                    check(spec, sub, x, &format!("{at}.{k}"), errors);
                }
            }
        }
    }
    if let Some(items) = v.as_array() {
        if let Some(item_schema) = schema.get("items") {
            for (i, x) in items.iter().enumerate() {
                check(spec, item_schema, x, &format!("{at}[{i}]"), errors);
            }
        }
        if schema.get("uniqueItems") == Some(&Value::Bool(true)) {
            for (i, x) in items.iter().enumerate() {
                if items[..i].contains(x) {
                    errors.push(format!("{at}[{i}]: duplicate of an earlier item"));
                }
            }
        }
    }
}
