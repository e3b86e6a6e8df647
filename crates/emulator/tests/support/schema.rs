//! A minimal validator for the Swagger 2.0 schema subset that Iterable's spec
//! (`spec/iterable-openapi.json`) uses for the responses the emulator serves:
//! `$ref` to `#/definitions/...`, `type` (object, array, string, integer, number, boolean),
//! `properties`, `required`, `additionalProperties`, `items`, `enum`, `format` (int32, int64)
//! and `uniqueItems`. Annotations (`description`, `example`, `title`, `x-*`) are ignored; any
//! other keyword is reported as unsupported rather than silently passed, so a schema this
//! validator cannot check never counts as a match.
//!
//! Included by `tests/contract.rs` with `#[path]`; its own tests prove it rejects bad documents.

use std::fmt;

use serde_json::{Map, Value};

/// The vendored spec, read at compile time so tests never look outside the repository.
const VENDORED: &str = include_str!("../../spec/iterable-openapi.json");

/// `int32` fields whose real values are wider than 32 bits. The spec types
/// `ListDetails.createdAt` as int32 yet describes it as "Creation timestamp as epoch time in
/// milliseconds", and Iterable sends values such as 1624575876355 (iterable-api.md 3.1). Only
/// this documented case may exceed the int32 range; every other int32 is range-checked.
const INT32_HOLDING_EPOCH_MILLIS: &[(&str, &str)] = &[("ListDetails", "createdAt")];

/// Keywords that only annotate and need no check.
const ANNOTATIONS: &[&str] = &["description", "example", "title", "default", "readOnly"];

/// Longest `$ref` chain followed before giving up (guards against `A -> B -> A`).
const MAX_REF_CHAIN: usize = 32;

/// What is wrong at one place of a document.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    /// A `required` key is absent.
    MissingRequired(String),
    /// The value is not of the schema's `type`.
    WrongType { expected: String, found: String },
    /// The value is not one of the schema's `enum` values.
    NotInEnum(Value),
    /// An `integer` with `format: int32/int64` outside that range.
    OutOfRange { format: String, value: Value },
    /// An item equal to the item at `first` in a `uniqueItems` array.
    DuplicateItem { first: usize },
    /// A key the schema's `additionalProperties: false` does not allow.
    NotAllowed(String),
    /// A `$ref` that is not `#/definitions/<name>` of an existing definition, or a cycle.
    BadRef(String),
    /// A keyword (or keyword value) this validator does not implement.
    Unsupported(String),
}

/// One error: a JSON path (`$.lists[0].listType`) and what is wrong there.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaError {
    pub path: String,
    pub problem: Problem,
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.path)?;
        match &self.problem {
            Problem::MissingRequired(k) => write!(f, "missing required key {k:?}"),
            Problem::WrongType { expected, found } => {
                write!(f, "expected {expected}, found {found}")
            }
            Problem::NotInEnum(v) => write!(f, "{v} is not one of the enum values"),
            Problem::OutOfRange { format, value } => write!(f, "{value} does not fit {format}"),
            Problem::DuplicateItem { first } => write!(f, "duplicate of item {first}"),
            Problem::NotAllowed(k) => write!(f, "key {k:?} is not allowed"),
            Problem::BadRef(r) => write!(f, "bad $ref {r:?}"),
            Problem::Unsupported(k) => write!(f, "unsupported schema keyword {k}"),
        }
    }
}

/// A Swagger 2.0 document.
pub struct Spec {
    doc: Value,
}

impl Spec {
    /// The vendored spec (`crates/emulator/spec/iterable-openapi.json`).
    pub fn vendored() -> Spec {
        Spec::from_value(serde_json::from_str(VENDORED).expect("the vendored spec is JSON"))
    }

    pub fn from_value(doc: Value) -> Spec {
        Spec { doc }
    }

    /// The operation object of `method path` (path as templated in the spec).
    pub fn operation(&self, method: &str, path: &str) -> Option<&Value> {
        self.doc
            .get("paths")?
            .get(path)?
            .get(method.to_ascii_lowercase())
    }

    /// The response object documented for `method path` and `status`, if there is one.
    pub fn response(&self, method: &str, path: &str, status: u16) -> Option<&Value> {
        self.operation(method, path)?
            .get("responses")?
            .get(status.to_string())
    }

    /// The schema of that response; `None` when the status is undocumented or has no schema.
    pub fn response_schema(&self, method: &str, path: &str, status: u16) -> Option<&Value> {
        self.response(method, path, status)?.get("schema")
    }

    /// The media types the operation produces (its own `produces`, else the document's).
    pub fn produces(&self, method: &str, path: &str) -> Vec<String> {
        self.operation(method, path)
            .and_then(|op| op.get("produces"))
            .or_else(|| self.doc.get("produces"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A `#/definitions/<name>` schema.
    pub fn definition(&self, name: &str) -> Option<&Value> {
        self.doc.get("definitions")?.get(name)
    }

    /// Every way `value` departs from `schema`; empty when it conforms.
    pub fn validate(&self, schema: &Value, value: &Value) -> Vec<SchemaError> {
        let mut errors = Vec::new();
        self.check(schema, value, &mut Cursor::root(), &mut errors);
        errors
    }

    /// Follows `$ref`s to a schema with content; `None` (and an error) when one is bad.
    fn resolve<'a>(
        &'a self,
        mut schema: &'a Value,
        at: &mut Cursor,
        errors: &mut Vec<SchemaError>,
    ) -> Option<&'a Value> {
        for _ in 0..MAX_REF_CHAIN {
            let Some(r) = schema.get("$ref") else {
                return Some(schema);
            };
            // In Swagger 2.0 (JSON Schema draft 4) a `$ref`'s siblings are ignored.
            let target = r
                .as_str()
                .and_then(|r| r.strip_prefix("#/definitions/"))
                .filter(|name| !name.contains('/'))
                .and_then(|name| self.definition(name).map(|d| (name, d)));
            match target {
                Some((name, def)) => {
                    at.definition = Some(name.to_string());
                    at.property = None;
                    schema = def;
                }
                None => {
                    at.error(errors, Problem::BadRef(value_text(r)));
                    return None;
                }
            }
        }
        at.error(
            errors,
            Problem::BadRef(format!("chain longer than {MAX_REF_CHAIN} (a cycle?)")),
        );
        None
    }

    fn check(&self, schema: &Value, v: &Value, at: &mut Cursor, errors: &mut Vec<SchemaError>) {
        let saved = (at.definition.clone(), at.property.clone());
        if let Some(schema) = self.resolve(schema, at, errors) {
            self.check_resolved(schema, v, at, errors);
        }
        (at.definition, at.property) = saved;
    }

    fn check_resolved(
        &self,
        schema: &Value,
        v: &Value,
        at: &mut Cursor,
        errors: &mut Vec<SchemaError>,
    ) {
        let Some(s) = schema.as_object() else {
            at.error(errors, Problem::Unsupported("non-object schema".into()));
            return;
        };
        for k in s.keys() {
            let known = matches!(
                k.as_str(),
                "type"
                    | "properties"
                    | "required"
                    | "additionalProperties"
                    | "items"
                    | "enum"
                    | "format"
                    | "uniqueItems"
            );
            if !known && !ANNOTATIONS.contains(&k.as_str()) && !k.starts_with("x-") {
                at.error(errors, Problem::Unsupported(k.clone()));
            }
        }
        if let Some(t) = s.get("type") {
            let Some(t) = t.as_str() else {
                at.error(errors, Problem::Unsupported(format!("type {t}")));
                return;
            };
            match type_matches(t, v) {
                None => {
                    at.error(errors, Problem::Unsupported(format!("type {t:?}")));
                    return;
                }
                Some(false) => {
                    at.error(
                        errors,
                        Problem::WrongType {
                            expected: t.to_string(),
                            found: json_type(v).to_string(),
                        },
                    );
                    // Nothing below is meaningful for a value of the wrong type.
                    return;
                }
                Some(true) => {}
            }
        }
        if let Some(allowed) = s.get("enum") {
            match allowed.as_array() {
                Some(allowed) if !allowed.contains(v) => {
                    at.error(errors, Problem::NotInEnum(v.clone()));
                }
                Some(_) => {}
                None => at.error(errors, Problem::Unsupported("non-array enum".into())),
            }
        }
        if let Some(format) = s.get("format").and_then(Value::as_str) {
            self.check_format(format, v, at, errors);
        }
        if let Some(obj) = v.as_object() {
            self.check_object(s, obj, at, errors);
        }
        if let Some(items) = v.as_array() {
            if let Some(item_schema) = s.get("items") {
                for (i, x) in items.iter().enumerate() {
                    at.push_index(i);
                    self.check(item_schema, x, at, errors);
                    at.pop();
                }
            }
            if s.get("uniqueItems") == Some(&Value::Bool(true)) {
                for (i, x) in items.iter().enumerate() {
                    if let Some(first) = items[..i].iter().position(|y| y == x) {
                        at.push_index(i);
                        at.error(errors, Problem::DuplicateItem { first });
                        at.pop();
                    }
                }
            }
        }
    }

    fn check_format(&self, format: &str, v: &Value, at: &Cursor, errors: &mut Vec<SchemaError>) {
        let Some(n) = v.as_number() else {
            // Formats of strings (date-time, ...) are annotations here: no response checked
            // by the contract tests carries one.
            return;
        };
        let fits = match format {
            "int64" => n.is_i64(),
            "int32" => {
                let documented_wide = match (&at.definition, &at.property) {
                    (Some(d), Some(p)) => INT32_HOLDING_EPOCH_MILLIS
                        .iter()
                        .any(|(dd, pp)| dd == d && pp == p),
                    _ => false,
                };
                documented_wide || n.as_i64().is_some_and(|x| i32::try_from(x).is_ok())
            }
            // float/double: any JSON number will do.
            _ => true,
        };
        if !fits {
            at.error(
                errors,
                Problem::OutOfRange {
                    format: format.to_string(),
                    value: v.clone(),
                },
            );
        }
    }

    fn check_object(
        &self,
        s: &Map<String, Value>,
        obj: &Map<String, Value>,
        at: &mut Cursor,
        errors: &mut Vec<SchemaError>,
    ) {
        if let Some(required) = s.get("required") {
            match required.as_array() {
                Some(req) => {
                    for k in req {
                        match k.as_str() {
                            Some(k) if !obj.contains_key(k) => {
                                at.error(errors, Problem::MissingRequired(k.to_string()));
                            }
                            Some(_) => {}
                            None => at
                                .error(errors, Problem::Unsupported(format!("required entry {k}"))),
                        }
                    }
                }
                None => at.error(errors, Problem::Unsupported("non-array required".into())),
            }
        }
        let props = s.get("properties").and_then(Value::as_object);
        let outer = (at.definition.clone(), at.property.clone());
        for (k, x) in obj {
            let sub = match props.and_then(|p| p.get(k)) {
                Some(sub) => sub,
                // Keys the schema does not name are allowed unless additionalProperties says
                // otherwise (false, or a schema they must match).
                None => match s.get("additionalProperties") {
                    None | Some(Value::Bool(true)) => continue,
                    Some(Value::Bool(false)) => {
                        at.error(errors, Problem::NotAllowed(k.clone()));
                        continue;
                    }
                    Some(sub) => sub,
                },
            };
            at.push_key(k);
            // The key is a property of the definition only when this object is the
            // definition itself, not an inline object inside one of its properties.
            at.definition = if outer.1.is_some() {
                None
            } else {
                outer.0.clone()
            };
            at.property = Some(k.clone());
            self.check(sub, x, at, errors);
            at.pop();
        }
        (at.definition, at.property) = outer;
    }
}

/// Where the validator is: the JSON path, and the definition and property whose schema applies
/// (for the documented int32 exemption).
struct Cursor {
    path: Vec<String>,
    definition: Option<String>,
    property: Option<String>,
}

impl Cursor {
    fn root() -> Cursor {
        Cursor {
            path: Vec::new(),
            definition: None,
            property: None,
        }
    }

    fn push_key(&mut self, k: &str) {
        let plain = !k.is_empty()
            && !k.starts_with(|c: char| c.is_ascii_digit())
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        self.path.push(if plain {
            format!(".{k}")
        } else {
            format!("[{}]", Value::from(k))
        });
    }

    fn push_index(&mut self, i: usize) {
        self.path.push(format!("[{i}]"));
    }

    fn pop(&mut self) {
        self.path.pop();
    }

    fn error(&self, errors: &mut Vec<SchemaError>, problem: Problem) {
        errors.push(SchemaError {
            path: format!("${}", self.path.concat()),
            problem,
        });
    }
}

/// Whether `v` is of Swagger type `t`; `None` for a type this validator does not know.
fn type_matches(t: &str, v: &Value) -> Option<bool> {
    Some(match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        // A JSON number without a fraction or exponent, as draft 4 defines integer.
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        _ => return None,
    })
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn value_text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn def(name: &str) -> Value {
        json!({ "$ref": format!("#/definitions/{name}") })
    }

    /// The errors of `value` against definition `name` of the vendored spec.
    fn errors(name: &str, value: Value) -> Vec<SchemaError> {
        Spec::vendored().validate(&def(name), &value)
    }

    fn only(errors: &[SchemaError]) -> (&str, &Problem) {
        assert_eq!(errors.len(), 1, "{errors:?}");
        (errors[0].path.as_str(), &errors[0].problem)
    }

    fn good_bulk() -> Value {
        json!({
            "successCount": 1, "failCount": 1,
            "invalidEmails": ["bad@"], "invalidUserIds": [],
            "failedUpdates": {"invalidEmails": ["bad@"], "notFoundUserIds": []},
            "createdFields": ["a", "b"], "filteredOutFields": []
        })
    }

    fn good_lists() -> Value {
        json!({"lists": [
            {"id": 1056557, "name": "5 people", "createdAt": 1624575876355_i64, "listType": "Standard"},
            {"id": 7, "name": "s", "createdAt": 1, "listType": "Suppression",
             "isGlobalSuppressionEnabled": false, "description": "d"}
        ]})
    }

    #[test]
    fn accepts_recorded_and_spec_shaped_documents() {
        for (name, v) in [
            ("UserBulkUpdateListResponse", good_bulk()),
            ("GetListsResponse", good_lists()),
            ("GetListsResponse", json!({"lists": []})),
            ("CreateListResponse", json!({"listId": 1068682})),
            (
                "IterableApiResponse",
                json!({"msg": "", "code": "Success", "params": {}}),
            ),
            ("UserResponse", json!({})),
            (
                "UserResponse",
                json!({"user": {"email": "a@b.co", "userId": "u", "dataFields": {"x": [1]}}}),
            ),
        ] {
            let e = Spec::vendored().validate(&def(name), &v);
            assert!(e.is_empty(), "{name} {v}: {e:?}");
        }
    }

    #[test]
    fn rejects_a_missing_required_key() {
        let mut v = good_bulk();
        v.as_object_mut().unwrap().remove("failCount");
        let e = errors("UserBulkUpdateListResponse", v);
        assert_eq!(
            only(&e),
            ("$", &Problem::MissingRequired("failCount".into()))
        );
        let e = errors(
            "GetListsResponse",
            json!({"lists": [{"id": 1, "createdAt": 1, "listType": "Standard"}]}),
        );
        assert_eq!(
            only(&e),
            ("$.lists[0]", &Problem::MissingRequired("name".into()))
        );
        let e = errors("IterableApiResponse", json!({"msg": "x"}));
        assert_eq!(only(&e), ("$", &Problem::MissingRequired("code".into())));
    }

    #[test]
    fn rejects_wrong_types() {
        let wrong = |expected: &str, found: &str| Problem::WrongType {
            expected: expected.into(),
            found: found.into(),
        };
        let mut v = good_bulk();
        v["successCount"] = json!("1");
        assert_eq!(
            only(&errors("UserBulkUpdateListResponse", v)),
            ("$.successCount", &wrong("integer", "string"))
        );
        let mut v = good_bulk();
        v["successCount"] = json!(1.5);
        assert_eq!(
            only(&errors("UserBulkUpdateListResponse", v)),
            ("$.successCount", &wrong("integer", "number"))
        );
        let mut v = good_bulk();
        v["failedUpdates"]["invalidEmails"] = json!("bad@");
        assert_eq!(
            only(&errors("UserBulkUpdateListResponse", v)),
            ("$.failedUpdates.invalidEmails", &wrong("array", "string"))
        );
        let mut v = good_bulk();
        v["failedUpdates"]["conflictUserIds"] = json!([7]);
        assert_eq!(
            only(&errors("UserBulkUpdateListResponse", v)),
            (
                "$.failedUpdates.conflictUserIds[0]",
                &wrong("string", "integer")
            )
        );
        let mut v = good_lists();
        v["lists"][1]["isGlobalSuppressionEnabled"] = json!("false");
        assert_eq!(
            only(&errors("GetListsResponse", v)),
            (
                "$.lists[1].isGlobalSuppressionEnabled",
                &wrong("boolean", "string")
            )
        );
        assert_eq!(
            only(&errors("GetListsResponse", json!([]))),
            ("$", &wrong("object", "array"))
        );
        // Swagger 2.0 has no null: a null params is not an object.
        assert_eq!(
            only(&errors(
                "IterableApiResponse",
                json!({"msg": "", "code": "Success", "params": null})
            )),
            ("$.params", &wrong("object", "null"))
        );
        assert_eq!(
            only(&errors("UserResponse", json!({"user": {"email": 5}}))),
            ("$.user.email", &wrong("string", "integer"))
        );
    }

    #[test]
    fn rejects_values_outside_an_enum() {
        let mut v = good_lists();
        v["lists"][0]["listType"] = json!("Smart");
        assert_eq!(
            only(&errors("GetListsResponse", v)),
            ("$.lists[0].listType", &Problem::NotInEnum(json!("Smart")))
        );
        let e = errors("IterableApiResponse", json!({"msg": "", "code": "Nope"}));
        assert_eq!(only(&e), ("$.code", &Problem::NotInEnum(json!("Nope"))));
        // Case matters.
        let e = errors("IterableApiResponse", json!({"msg": "", "code": "success"}));
        assert_eq!(only(&e).0, "$.code");
    }

    #[test]
    fn rejects_non_unique_items() {
        let mut v = good_bulk();
        v["createdFields"] = json!(["a", "b", "a"]);
        assert_eq!(
            only(&errors("UserBulkUpdateListResponse", v)),
            ("$.createdFields[2]", &Problem::DuplicateItem { first: 0 })
        );
        // invalidEmails has no uniqueItems: duplicates are fine there.
        let mut v = good_bulk();
        v["invalidEmails"] = json!(["x", "x"]);
        assert!(errors("UserBulkUpdateListResponse", v).is_empty());
    }

    #[test]
    fn rejects_bad_refs() {
        let s = Spec::vendored();
        for r in [
            "#/definitions/NoSuchDefinition",
            "#/parameters/listId",
            "other.json#/definitions/ListDetails",
            "#/definitions/ListDetails/properties",
        ] {
            let e = s.validate(&json!({ "$ref": r }), &json!({}));
            assert_eq!(only(&e), ("$", &Problem::BadRef(r.into())), "{r}");
        }
        // A bad $ref deep inside a definition is reported where it is met.
        let doc = Spec::from_value(json!({"definitions": {
            "Outer": {"type": "object", "properties": {"inner": {"$ref": "#/definitions/Gone"}}},
            "A": {"$ref": "#/definitions/B"},
            "B": {"$ref": "#/definitions/A"}
        }}));
        let e = doc.validate(&def("Outer"), &json!({"inner": 1}));
        assert_eq!(
            only(&e),
            ("$.inner", &Problem::BadRef("#/definitions/Gone".into()))
        );
        let e = doc.validate(&def("A"), &json!(1));
        assert!(matches!(only(&e).1, Problem::BadRef(m) if m.contains("cycle")));
    }

    #[test]
    fn int32_is_range_checked_except_for_epoch_millis_created_at() {
        // createdAt: int32 in the spec, epoch milliseconds in reality (documented exemption).
        assert!(errors("GetListsResponse", good_lists()).is_empty());
        // Every other int32 is checked.
        let mut v = good_bulk();
        v["successCount"] = json!(i64::from(i32::MAX) + 1);
        assert!(matches!(
            only(&errors("UserBulkUpdateListResponse", v)),
            ("$.successCount", Problem::OutOfRange { format, .. }) if format == "int32"
        ));
        let mut v = good_bulk();
        v["failCount"] = json!(-1);
        assert!(errors("UserBulkUpdateListResponse", v).is_empty());
        // The exemption is tied to ListDetails.createdAt, not to the name createdAt.
        let doc = Spec::from_value(json!({"definitions": {"Other": {"type": "object",
            "properties": {"createdAt": {"type": "integer", "format": "int32"}}}}}));
        let e = doc.validate(&def("Other"), &json!({"createdAt": 1624575876355_i64}));
        assert_eq!(only(&e).0, "$.createdAt");
        // ...and to ListDetails' own property, not one of an inline object inside it.
        let doc = Spec::from_value(json!({"definitions": {"ListDetails": {"type": "object",
        "properties": {
            "createdAt": {"type": "integer", "format": "int32"},
            "nested": {"type": "object",
                       "properties": {"createdAt": {"type": "integer", "format": "int32"}}}
        }}}}));
        let big = 1624575876355_i64;
        let e = doc.validate(
            &def("ListDetails"),
            &json!({"createdAt": big, "nested": {"createdAt": big}}),
        );
        assert_eq!(only(&e).0, "$.nested.createdAt");
        // int64 still bounds the id.
        let mut v = good_lists();
        v["lists"][0]["id"] = json!(u64::MAX);
        assert!(matches!(
            only(&errors("GetListsResponse", v)),
            ("$.lists[0].id", Problem::OutOfRange { format, .. }) if format == "int64"
        ));
    }

    #[test]
    fn additional_properties_and_unsupported_keywords() {
        let doc = Spec::from_value(json!({"definitions": {
            "Map": {"type": "object", "additionalProperties": {"type": "string"}},
            "Closed": {"type": "object", "properties": {"a": {"type": "string"}},
                       "additionalProperties": false},
            "Fancy": {"allOf": [{"type": "string"}]},
            "Nullable": {"type": ["string", "null"]}
        }}));
        assert!(doc.validate(&def("Map"), &json!({"x": "1"})).is_empty());
        let e = doc.validate(&def("Map"), &json!({"x": "1", "obj.name": 2}));
        assert_eq!(only(&e).0, "$[\"obj.name\"]");
        let e = doc.validate(&def("Closed"), &json!({"a": "x", "b": "y"}));
        assert_eq!(only(&e), ("$", &Problem::NotAllowed("b".into())));
        let e = doc.validate(&def("Fancy"), &json!("s"));
        assert_eq!(only(&e), ("$", &Problem::Unsupported("allOf".into())));
        let e = doc.validate(&def("Nullable"), &json!("s"));
        assert!(matches!(only(&e).1, Problem::Unsupported(_)));
    }

    #[test]
    fn errors_accumulate_with_paths() {
        let v = json!({"lists": [
            {"id": "1", "name": "a", "createdAt": 1, "listType": "Standard"},
            {"id": 2, "createdAt": 1, "listType": "Nope"}
        ]});
        let e = errors("GetListsResponse", v);
        let text: Vec<String> = e.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "$.lists[0].id: expected integer, found string",
                "$.lists[1]: missing required key \"name\"",
                "$.lists[1].listType: \"Nope\" is not one of the enum values",
            ],
            "{text:?}"
        );
    }

    #[test]
    fn looks_up_responses_by_path_method_and_status() {
        let s = Spec::vendored();
        assert_eq!(
            s.response_schema("GET", "/api/lists", 200),
            Some(&def("GetListsResponse"))
        );
        assert_eq!(
            s.response_schema("post", "/api/lists/subscribe", 200),
            Some(&def("UserBulkUpdateListResponse"))
        );
        assert!(s.response("DELETE", "/api/lists/{listId}", 409).is_some());
        assert_eq!(
            s.response_schema("DELETE", "/api/lists/{listId}", 409),
            None
        );
        assert_eq!(s.response("GET", "/api/lists", 418), None);
        assert_eq!(s.response("PATCH", "/api/lists", 200), None);
        assert_eq!(s.produces("GET", "/api/lists/getUsers"), ["text/plain"]);
        assert!(s.produces("GET", "/api/lists").is_empty());
    }
}
