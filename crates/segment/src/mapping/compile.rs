//! Compiling a mapping: mapping-kit's validation (`validate.ts`) plus every check its runtime
//! makes on the mapping alone, turning the JSON into a tree of nodes to evaluate per event.

use serde_json::{Map, Value};

use super::error::{Expected, JsType, Location, MappingError, Reason, Segment};
use super::js;
use super::path::Path;
use super::replace::{MAX_LENGTH, Replace};
use super::template::Template;

/// The key of mapping-kit's root directive, whose `@transform` receives the other fields.
const ROOT_DIRECTIVE_KEY: &str = "__segment_internal_directive";

/// A compiled mapping value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    /// JSON with no directive inside: resolves to itself.
    Raw(Value),
    Undefined,
    Object(Vec<(String, Node)>),
    Array(Vec<Node>),
    Path(Source<Path>),
    Template(Source<Template>),
    If {
        /// `exists` (not null or undefined) rather than `blank` (also `!= ''`).
        exists: bool,
        test: Box<Node>,
        then: Option<Box<Node>>,
        otherwise: Option<Box<Node>>,
        /// `then` is the same mapping as the condition (the common "if X exists, X"), so a
        /// true condition's value is the result and need not be resolved twice.
        then_is_test: bool,
    },
    Case {
        upper: bool,
        value: Option<Box<Node>>,
    },
    Replace {
        /// `None` when an option has a type mapping-kit silently turns into "".
        spec: Option<Replace>,
        value: Option<Box<Node>>,
    },
    ArrayPath {
        root: ArrayRoot,
        shape: Option<Box<Node>>,
    },
    Flatten {
        separator: Source<String>,
        value: Box<Node>,
        omit_arrays: bool,
    },
    Json {
        mode: JsonMode,
        value: Box<Node>,
    },
    Merge {
        direction: Direction,
        objects: Vec<Node>,
    },
    Transform {
        apply: Box<Node>,
        mapping: Box<Node>,
        at: Location,
    },
    ExcludeWhenNull(Box<Node>),
}

/// A directive argument that is a string, or a directive resolving (we hope) to one.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Source<T> {
    Static(T),
    Dynamic { node: Box<Node>, at: Location },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ArrayRoot {
    Path(Path),
    Node(Box<Node>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonMode {
    Encode,
    Decode,
    /// A mode that passed validation only case-insensitively (`"Encode"`): resolves to undefined.
    Neither,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Direction {
    Left,
    Right,
    Dynamic(Box<Node>),
}

/// Compiles a whole mapping; the node is meaningful only when no error was found.
pub(crate) fn compile(mapping: &Value) -> (Node, Vec<MappingError>) {
    let mut compiler = Compiler::default();
    let node = compiler.root(mapping);
    (node, compiler.errors)
}

/// Walks a mapping, collecting every problem with its location.
///
/// mapping-kit validates strictly only where `validate.ts` reaches: it does not look inside
/// arrays, nor inside raw objects given to `@literal` or `@excludeWhenNull`. There (`strict` is
/// false) this compiler accepts the shapes mapping-kit's runtime accepts, but still rejects
/// anything that runtime would throw on whatever the event: an unknown directive, an `@if`
/// without condition, an over-long `@replace` pattern, and so on.
#[derive(Default)]
struct Compiler {
    errors: Vec<MappingError>,
    at: Vec<Segment>,
}

/// mapping-kit's `realTypeOf`.
fn real_type(v: &Value) -> JsType {
    match v {
        Value::Null => JsType::Null,
        Value::Bool(_) => JsType::Boolean,
        Value::Number(_) => JsType::Number,
        Value::String(_) => JsType::String,
        Value::Array(_) => JsType::Array,
        Value::Object(_) => JsType::Object,
    }
}

/// mapping-kit's `realTypeOrDirective`: an object with any `@` key is a directive.
fn type_or_directive(v: &Value) -> JsType {
    match v {
        Value::Object(map) if has_at_key(map) => JsType::Directive,
        other => real_type(other),
    }
}

fn has_at_key(map: &Map<String, Value>) -> bool {
    map.keys().any(|k| k.starts_with('@'))
}

/// The runtime's `isDirective`: `@` keys, with nothing else but `_metadata`.
fn is_directive_shape(map: &Map<String, Value>) -> bool {
    has_at_key(map) && map.keys().all(|k| k.starts_with('@') || k == "_metadata")
}

/// JavaScript truthiness of a raw option (`undefined` when absent).
fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(_) | Value::Object(_)) => true,
    }
}

fn want_string(v: &Value) -> Option<Reason> {
    match type_or_directive(v) {
        JsType::String => None,
        found => Some(Reason::WrongType {
            expected: Expected::String,
            found,
        }),
    }
}

fn want_bool(v: &Value) -> Option<Reason> {
    match type_or_directive(v) {
        JsType::Boolean => None,
        found => Some(Reason::WrongType {
            expected: Expected::Boolean,
            found,
        }),
    }
}

fn want_array(v: &Value) -> Option<Reason> {
    match real_type(v) {
        JsType::Array => None,
        found => Some(Reason::WrongType {
            expected: Expected::Array,
            found,
        }),
    }
}

fn want_string_or_directive(v: &Value) -> Option<Reason> {
    match type_or_directive(v) {
        JsType::String | JsType::Directive => None,
        found => Some(Reason::WrongType {
            expected: Expected::StringOrDirective,
            found,
        }),
    }
}

fn want_object_or_directive(v: &Value) -> Option<Reason> {
    match type_or_directive(v) {
        JsType::Object | JsType::Directive => None,
        found => Some(Reason::WrongType {
            expected: Expected::ObjectOrDirective,
            found,
        }),
    }
}

fn want_anything(_: &Value) -> Option<Reason> {
    None
}

fn want_short_string(v: &Value, min: usize) -> Option<Reason> {
    if let Some(reason) = want_string(v) {
        return Some(reason);
    }
    let len = v.as_str().map_or(0, js::utf16_len);
    if len < min {
        Some(Reason::StringTooShort { min })
    } else if len > MAX_LENGTH {
        Some(Reason::StringTooLong { max: MAX_LENGTH })
    } else {
        None
    }
}

fn want_one_of(v: &Value, allowed: &'static [&'static str]) -> Option<Reason> {
    if let Some(reason) = want_string(v) {
        return Some(reason);
    }
    let lower = v.as_str().map(str::to_lowercase).unwrap_or_default();
    if allowed.contains(&lower.as_str()) {
        None
    } else {
        Some(Reason::NotAllowed {
            allowed,
            found: v.to_string(),
        })
    }
}

impl Compiler {
    fn location(&self) -> Location {
        Location::from_segments(self.at.clone())
    }

    fn error(&mut self, reason: Reason) {
        self.errors.push(MappingError::new(self.location(), reason));
    }

    fn within<R>(&mut self, segment: Segment, f: impl FnOnce(&mut Self) -> R) -> R {
        self.at.push(segment);
        let result = f(self);
        self.at.pop();
        result
    }

    fn key<R>(&mut self, key: &str, f: impl FnOnce(&mut Self) -> R) -> R {
        self.within(Segment::Key(key.to_owned()), f)
    }

    fn error_at(&mut self, key: &str, reason: Reason) {
        self.key(key, |c| c.error(reason));
    }

    /// Strict check of one directive option (`validateObjectWithFields`); true when it found a
    /// problem.
    fn check(
        &mut self,
        options: &Map<String, Value>,
        prop: &'static str,
        required: bool,
        rule: impl Fn(&Value) -> Option<Reason>,
    ) -> bool {
        match options.get(prop) {
            None if required => {
                self.error(Reason::MissingField(prop));
                true
            }
            None => false,
            Some(v) => match rule(v) {
                Some(reason) => {
                    self.error_at(prop, reason);
                    true
                }
                None => false,
            },
        }
    }

    /// Strict mode validates every option, even ones the directive never resolves.
    fn validate_rest(&mut self, options: &Map<String, Value>, used: &[&str], strict: bool) {
        if !strict {
            return;
        }
        for (k, v) in options {
            if !used.contains(&k.as_str()) {
                self.key(k, |c| {
                    c.mapping(v, true);
                });
            }
        }
    }

    /// The options object of a directive.
    fn options<'v>(&mut self, opts: &'v Value, strict: bool) -> Option<&'v Map<String, Value>> {
        match opts {
            Value::Object(map) if !strict || !has_at_key(map) => Some(map),
            other => {
                let found = if strict {
                    type_or_directive(other)
                } else {
                    real_type(other)
                };
                self.error(Reason::WrongType {
                    expected: Expected::Object,
                    found,
                });
                None
            }
        }
    }

    /// A top-level mapping (also `@transform`'s `apply`), with the root directive handled.
    fn root(&mut self, mapping: &Value) -> Node {
        match mapping {
            Value::Object(map) if map.contains_key(ROOT_DIRECTIVE_KEY) => self.internal_root(map),
            other => self.mapping(other, true),
        }
    }

    /// Any mapping value. `strict` is true where mapping-kit's `validate` reaches.
    fn mapping(&mut self, v: &Value, strict: bool) -> Node {
        match v {
            Value::Object(map) => {
                let at_keys: Vec<&String> = map.keys().filter(|k| k.starts_with('@')).collect();
                let Some(first) = at_keys.first().copied() else {
                    return self.plain_object(map, strict);
                };
                let others = map
                    .keys()
                    .filter(|k| !k.starts_with('@') && *k != "_metadata")
                    .count();
                if strict && (at_keys.len() > 1 || others > 0) {
                    let keys = if at_keys.len() > 1 {
                        at_keys.len()
                    } else {
                        map.len()
                    };
                    self.within(Segment::Directive(first.clone()), |c| {
                        c.error(Reason::MixedKeys { keys })
                    });
                    return Node::Undefined;
                }
                if others > 0 {
                    // Not a directive to mapping-kit's runtime: an ordinary object.
                    return self.plain_object(map, strict);
                }
                if at_keys.len() > 1 {
                    self.error(Reason::MultipleDirectives(
                        at_keys.iter().map(|k| (*k).clone()).collect(),
                    ));
                    return Node::Undefined;
                }
                match map.get(first) {
                    Some(opts) => self.directive(first, opts, strict),
                    None => Node::Undefined,
                }
            }
            Value::Array(items) => {
                // `validate` stops at arrays; their items are resolved all the same.
                let nodes: Vec<Node> = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.within(Segment::Index(i), |c| c.mapping(item, false)))
                    .collect();
                if nodes.iter().all(|n| matches!(n, Node::Raw(_))) {
                    Node::Raw(v.clone())
                } else {
                    Node::Array(nodes)
                }
            }
            scalar => Node::Raw(scalar.clone()),
        }
    }

    fn plain_object(&mut self, map: &Map<String, Value>, strict: bool) -> Node {
        let entries: Vec<(String, Node)> = map
            .iter()
            .map(|(k, v)| (k.clone(), self.key(k, |c| c.mapping(v, strict))))
            .collect();
        if entries.iter().all(|(_, n)| matches!(n, Node::Raw(_))) {
            Node::Raw(Value::Object(
                entries
                    .into_iter()
                    .filter_map(|(k, n)| match n {
                        Node::Raw(v) => Some((k, v)),
                        _ => None,
                    })
                    .collect(),
            ))
        } else {
            Node::Object(entries)
        }
    }

    fn directive(&mut self, name: &str, opts: &Value, strict: bool) -> Node {
        self.within(Segment::Directive(name.to_owned()), |c| match name {
            "@if" => c.d_if(opts, strict),
            "@case" => c.d_case(opts, strict),
            "@replace" => c.d_replace(opts, strict),
            "@arrayPath" => c.d_array_path(opts, strict),
            "@path" => match c.string_source(opts, strict) {
                Some(Source::Static(s)) => Node::Path(Source::Static(Path::for_directive(&s))),
                Some(Source::Dynamic { node, at }) => Node::Path(Source::Dynamic { node, at }),
                None => Node::Undefined,
            },
            "@template" => match c.string_source(opts, strict) {
                Some(Source::Static(s)) => Node::Template(Source::Static(Template::parse(&s))),
                Some(Source::Dynamic { node, at }) => Node::Template(Source::Dynamic { node, at }),
                None => Node::Undefined,
            },
            "@literal" => c.raw_or_directive(opts, strict),
            "@excludeWhenNull" => Node::ExcludeWhenNull(Box::new(c.raw_or_directive(opts, strict))),
            "@flatten" => c.d_flatten(opts, strict),
            "@json" => c.d_json(opts, strict),
            "@merge" => c.d_merge(opts, strict),
            "@transform" => c.d_transform(opts, strict),
            "@liquid" => {
                c.error(Reason::UnsupportedDirective(name.to_owned()));
                Node::Undefined
            }
            _ => {
                c.error(Reason::UnknownDirective(name.to_owned()));
                Node::Undefined
            }
        })
    }

    /// `validateDirectiveOrRaw`: a directive is validated, a raw object or array is not.
    fn raw_or_directive(&mut self, v: &Value, strict: bool) -> Node {
        let strict = strict && type_or_directive(v) == JsType::Directive;
        self.mapping(v, strict)
    }

    /// The argument of `@path` and `@template`, which must resolve to a string.
    fn string_source(&mut self, v: &Value, strict: bool) -> Option<Source<String>> {
        match v {
            Value::String(s) => Some(Source::Static(s.clone())),
            Value::Object(map) if has_at_key(map) && (strict || is_directive_shape(map)) => {
                let node = self.mapping(v, strict);
                Some(Source::Dynamic {
                    node: Box::new(node),
                    at: self.location(),
                })
            }
            other => {
                let (expected, found) = if strict {
                    (Expected::StringOrDirective, type_or_directive(other))
                } else {
                    (Expected::String, real_type(other))
                };
                self.error(Reason::WrongType { expected, found });
                None
            }
        }
    }

    fn d_if(&mut self, opts: &Value, strict: bool) -> Node {
        let Some(m) = self.options(opts, strict) else {
            return Node::Undefined;
        };
        let exists = m.get("exists");
        let blank = m.get("blank");
        let condition = match (exists, blank) {
            _ if !truthy(exists) && !truthy(blank) => None,
            (Some(e), _) => Some((true, "exists", e)),
            (None, Some(b)) => Some((false, "blank", b)),
            (None, None) => None,
        };
        let Some((is_exists, key, test)) = condition else {
            self.error(Reason::IfWithoutCondition);
            self.validate_rest(m, &[], strict);
            return Node::Undefined;
        };
        let mut used = vec![key];
        let test = self.key(key, |c| c.mapping(test, strict));
        let then = m.get("then").map(|v| {
            used.push("then");
            Box::new(self.key("then", |c| c.mapping(v, strict)))
        });
        let otherwise = m.get("else").filter(|v| truthy(Some(v))).map(|v| {
            used.push("else");
            Box::new(self.key("else", |c| c.mapping(v, strict)))
        });
        self.validate_rest(m, &used, strict);
        let then_is_test = then.as_deref() == Some(&test);
        Node::If {
            exists: is_exists,
            test: Box::new(test),
            then,
            otherwise,
            then_is_test,
        }
    }

    fn d_case(&mut self, opts: &Value, strict: bool) -> Node {
        let Some(m) = self.options(opts, strict) else {
            return Node::Undefined;
        };
        let mut bad_operator = false;
        if strict {
            bad_operator = self.check(m, "operator", false, want_string);
            self.check(m, "value", false, want_string_or_directive);
        }
        let operator = m.get("operator");
        let upper = match operator {
            _ if !truthy(operator) => {
                if !bad_operator {
                    self.error(Reason::FalsyOption("operator"));
                }
                None
            }
            Some(Value::String(s)) if s == "lower" => Some(false),
            Some(Value::String(s)) if s == "upper" => Some(true),
            Some(other) => {
                if !bad_operator {
                    self.error_at("operator", Reason::InvalidCaseOperator(other.to_string()));
                }
                None
            }
            None => None,
        };
        let value = self.truthy_option(m, "value", strict);
        let used: &[&str] = if value.is_some() { &["value"] } else { &[] };
        self.validate_rest(m, used, strict);
        match upper {
            Some(upper) => Node::Case { upper, value },
            None => Node::Undefined,
        }
    }

    /// Compiles an option that mapping-kit resolves only when its raw value is truthy.
    fn truthy_option(
        &mut self,
        m: &Map<String, Value>,
        key: &str,
        strict: bool,
    ) -> Option<Box<Node>> {
        m.get(key)
            .filter(|v| truthy(Some(v)))
            .map(|v| Box::new(self.key(key, |c| c.mapping(v, strict))))
    }

    fn d_replace(&mut self, opts: &Value, strict: bool) -> Node {
        let Some(m) = self.options(opts, strict) else {
            return Node::Undefined;
        };
        let (mut bad_pattern, mut bad_replacement) = (false, false);
        if strict {
            bad_pattern = self.check(m, "pattern", true, |v| want_short_string(v, 1));
            bad_replacement = self.check(m, "replacement", false, |v| want_short_string(v, 0));
            self.check(m, "value", true, want_string_or_directive);
            self.check(m, "ignorecase", false, want_bool);
            self.check(m, "global", false, want_bool);
        }
        if !truthy(m.get("pattern")) && !bad_pattern {
            self.error(Reason::FalsyOption("pattern"));
        }
        let pattern = m
            .get("pattern")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let replacement = match m.get("replacement") {
            None | Some(Value::Null) => Some(""),
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => None,
        };
        if !bad_pattern {
            self.check_length(pattern, "pattern");
        }
        if !bad_replacement {
            self.check_length(replacement, "replacement");
        }
        let ignore_case = match m.get("ignorecase") {
            None | Some(Value::Null) => Some(false),
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => None,
        };
        let global = match m.get("global") {
            None | Some(Value::Null) => Some(true),
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => None,
        };
        let second = if truthy(m.get("pattern2")) {
            let replacement2 = match m.get("replacement2") {
                None | Some(Value::Null) => Some(""),
                Some(Value::String(s)) => Some(s.as_str()),
                Some(_) => None,
            };
            match (m.get("pattern2").and_then(Value::as_str), replacement2) {
                (Some(p2), Some(r2)) => {
                    self.check_length(Some(p2), "pattern2");
                    self.check_length(Some(r2), "replacement2");
                    Some((p2, r2))
                }
                _ => None,
            }
        } else {
            None
        };
        let spec = match (pattern, replacement, ignore_case, global) {
            (Some(p), Some(r), Some(i), Some(g)) => Some(Replace::new(p, r, second, g, i)),
            _ => None,
        };
        let value = self.truthy_option(m, "value", strict);
        let used: &[&str] = if value.is_some() { &["value"] } else { &[] };
        self.validate_rest(m, used, strict);
        Node::Replace { spec, value }
    }

    /// `performReplace` throws on every call for a pattern or replacement over 10 units.
    fn check_length(&mut self, s: Option<&str>, key: &str) {
        if s.is_some_and(|s| js::utf16_len(s) > MAX_LENGTH) {
            self.error_at(key, Reason::StringTooLong { max: MAX_LENGTH });
        }
    }

    fn d_array_path(&mut self, opts: &Value, strict: bool) -> Node {
        let Value::Array(items) = opts else {
            self.error(Reason::WrongType {
                expected: Expected::Array,
                found: real_type(opts),
            });
            return Node::Undefined;
        };
        let first = items.first();
        if strict {
            let problem = match first {
                None => Some(Reason::WrongType {
                    expected: Expected::StringOrDirective,
                    found: JsType::Undefined,
                }),
                Some(v) => want_string_or_directive(v),
            };
            if let Some(reason) = problem {
                self.within(Segment::Index(0), |c| c.error(reason));
            }
        }
        let root = match first {
            Some(Value::String(s)) => ArrayRoot::Path(Path::for_directive(s)),
            Some(v) => ArrayRoot::Node(Box::new(
                self.within(Segment::Index(0), |c| c.mapping(v, strict)),
            )),
            None => ArrayRoot::Node(Box::new(Node::Undefined)),
        };
        let shape = match items.get(1) {
            Some(v @ Value::Object(shape)) if !shape.is_empty() => Some(Box::new(
                self.within(Segment::Index(1), |c| c.mapping(v, strict)),
            )),
            Some(v) => {
                if strict {
                    self.within(Segment::Index(1), |c| {
                        c.mapping(v, true);
                    });
                }
                None
            }
            None => None,
        };
        Node::ArrayPath { root, shape }
    }

    fn d_flatten(&mut self, opts: &Value, strict: bool) -> Node {
        let Some(m) = self.options(opts, strict) else {
            return Node::Undefined;
        };
        let mut bad_separator = false;
        if strict {
            bad_separator = self.check(m, "separator", false, want_string);
            self.check(m, "value", true, want_anything);
        }
        let raw_separator = m.get("separator");
        let mut used = vec!["value"];
        let separator = match raw_separator {
            _ if !truthy(raw_separator) => {
                if !bad_separator {
                    self.error(Reason::FalsyOption("separator"));
                }
                None
            }
            Some(Value::String(s)) => Some(Source::Static(s.clone())),
            Some(v @ Value::Object(o)) if !strict && is_directive_shape(o) => {
                used.push("separator");
                let node = self.key("separator", |c| c.mapping(v, false));
                Some(Source::Dynamic {
                    node: Box::new(node),
                    at: self.location(),
                })
            }
            Some(other) => {
                if !bad_separator {
                    self.error_at(
                        "separator",
                        Reason::WrongType {
                            expected: Expected::String,
                            found: real_type(other),
                        },
                    );
                }
                None
            }
            None => None,
        };
        let value = match m.get("value") {
            Some(v) => self.key("value", |c| c.mapping(v, strict)),
            None => Node::Undefined,
        };
        self.validate_rest(m, &used, strict);
        match separator {
            Some(separator) => Node::Flatten {
                separator,
                value: Box::new(value),
                omit_arrays: truthy(m.get("omitArrays")),
            },
            None => Node::Undefined,
        }
    }

    fn d_json(&mut self, opts: &Value, strict: bool) -> Node {
        let Some(m) = self.options(opts, strict) else {
            return Node::Undefined;
        };
        let (mut bad_mode, mut bad_value) = (false, false);
        if strict {
            bad_value = self.check(m, "value", true, want_anything);
            bad_mode = self.check(m, "mode", true, |v| want_one_of(v, &["encode", "decode"]));
        }
        if !truthy(m.get("mode")) && !bad_mode {
            self.error(Reason::FalsyOption("mode"));
        }
        if !truthy(m.get("value")) && !bad_value {
            self.error(Reason::FalsyOption("value"));
        }
        let mode = match m.get("mode").and_then(Value::as_str) {
            Some("encode") => JsonMode::Encode,
            Some("decode") => JsonMode::Decode,
            _ => JsonMode::Neither,
        };
        let value = self.truthy_option(m, "value", strict);
        let used: &[&str] = if value.is_some() { &["value"] } else { &[] };
        self.validate_rest(m, used, strict);
        Node::Json {
            mode,
            value: value.unwrap_or_else(|| Box::new(Node::Undefined)),
        }
    }

    fn d_merge(&mut self, opts: &Value, strict: bool) -> Node {
        let Some(m) = self.options(opts, strict) else {
            return Node::Undefined;
        };
        let (mut bad_direction, mut bad_objects) = (false, false);
        if strict {
            bad_direction = self.check(m, "direction", false, |v| {
                want_one_of(v, &["left", "right"])
            });
            bad_objects = self.check(m, "objects", true, want_array);
        }
        let raw_direction = m.get("direction");
        let mut used = vec!["objects"];
        let direction = match raw_direction {
            _ if !truthy(raw_direction) => {
                if !bad_direction {
                    self.error(Reason::FalsyOption("direction"));
                }
                Direction::Right
            }
            Some(Value::String(s)) if s == "left" => Direction::Left,
            Some(v) if !strict && !v.is_string() => {
                used.push("direction");
                Direction::Dynamic(Box::new(self.key("direction", |c| c.mapping(v, false))))
            }
            _ => Direction::Right,
        };
        let mut objects = Vec::new();
        match m.get("objects") {
            Some(Value::Array(items)) => {
                self.key("objects", |c| {
                    for (i, item) in items.iter().enumerate() {
                        let node = c.within(Segment::Index(i), |c| {
                            if let Some(reason) = want_object_or_directive(item).filter(|_| strict)
                            {
                                c.error(reason);
                            }
                            c.mapping(item, strict)
                        });
                        objects.push(node);
                    }
                });
            }
            Some(other) if truthy(Some(other)) => {
                if !bad_objects {
                    self.error_at(
                        "objects",
                        Reason::WrongType {
                            expected: Expected::Array,
                            found: real_type(other),
                        },
                    );
                }
            }
            _ => {
                if !bad_objects {
                    self.error(Reason::FalsyOption("objects"));
                }
            }
        }
        self.validate_rest(m, &used, strict);
        Node::Merge { direction, objects }
    }

    fn d_transform(&mut self, opts: &Value, strict: bool) -> Node {
        let Some(m) = self.options(opts, strict) else {
            return Node::Undefined;
        };
        let (mut bad_apply, mut bad_mapping) = (false, false);
        if strict {
            bad_apply = self.check(m, "apply", true, want_object_or_directive);
            bad_mapping = self.check(m, "mapping", true, want_object_or_directive);
        }
        if !truthy(m.get("mapping")) && !bad_mapping {
            self.error(Reason::FalsyOption("mapping"));
        }
        let apply = self.transform_apply(m.get("apply"), bad_apply);
        let mapping = self
            .truthy_option(m, "mapping", strict)
            .unwrap_or_else(|| Box::new(Node::Undefined));
        self.validate_rest(m, &["apply", "mapping"], strict);
        Node::Transform {
            apply: Box::new(apply),
            mapping,
            at: self.location(),
        }
    }

    /// `@transform`'s `apply` must be an object; mapping-kit then runs a whole `transform` on
    /// it, validation included, so it is always compiled strictly.
    fn transform_apply(&mut self, apply: Option<&Value>, reported: bool) -> Node {
        match apply {
            Some(v @ Value::Object(_)) => self.key("apply", |c| c.root(v)),
            Some(other) if truthy(Some(other)) => {
                if !reported {
                    self.error_at(
                        "apply",
                        Reason::WrongType {
                            expected: Expected::Object,
                            found: real_type(other),
                        },
                    );
                }
                Node::Undefined
            }
            _ => {
                if !reported {
                    self.error(Reason::FalsyOption("apply"));
                }
                Node::Undefined
            }
        }
    }

    /// `{"__segment_internal_directive": {"@transform": {"apply": …}}, …fields}`: the other
    /// fields become the `@transform`'s `mapping`.
    fn internal_root(&mut self, map: &Map<String, Value>) -> Node {
        let options = self.key(ROOT_DIRECTIVE_KEY, |c| match map.get(ROOT_DIRECTIVE_KEY) {
            Some(Value::Object(root)) if root.len() == 1 => match root.get("@transform") {
                Some(Value::Object(options)) => Some(options),
                _ => {
                    c.error(Reason::RootDirective(
                        "must be a single @transform directive whose value is an object",
                    ));
                    None
                }
            },
            _ => {
                c.error(Reason::RootDirective(
                    "must be an object holding a single @transform directive",
                ));
                None
            }
        });
        let Some(options) = options else {
            return Node::Undefined;
        };
        let (apply, at) = self.key(ROOT_DIRECTIVE_KEY, |c| {
            c.within(Segment::Directive("@transform".to_owned()), |c| {
                let bad_apply = c.check(options, "apply", true, want_object_or_directive);
                let apply = c.transform_apply(options.get("apply"), bad_apply);
                // mapping-kit overwrites any `mapping` here with the other fields.
                c.validate_rest(options, &["apply", "mapping"], true);
                (apply, c.location())
            })
        });
        let fields: Map<String, Value> = map
            .iter()
            .filter(|(k, _)| k.as_str() != ROOT_DIRECTIVE_KEY)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mapping = self.mapping(&Value::Object(fields), true);
        Node::Transform {
            apply: Box::new(apply),
            mapping: Box::new(mapping),
            at,
        }
    }
}
