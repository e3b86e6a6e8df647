//! Compiling a mapping: mapping-kit's validation (`validate.ts`), which rejects a mapping
//! whatever the event, and the tree of nodes to evaluate per event. What mapping-kit's runtime
//! throws on (an `@if` without condition, `@json` with a falsy value, …) becomes a node that
//! fails when, and only when, an event reaches it, as mapping-kit fails.

use serde_json::{Map, Value};

use super::error::{EvalError, Expected, JsType, Location, MappingError, Reason, Segment};
use super::js;
use super::liquid::Liquid;
use super::path::Path;
use super::replace::Replace;
use super::template::Template;
pub(super) use super::validate::{
    want_anything, want_array, want_bool, want_object_or_directive, want_one_of, want_short_string,
    want_string, want_string_or_directive,
};

/// The key of mapping-kit's root directive, whose `@transform` receives the other fields.
const ROOT_DIRECTIVE_KEY: &str = "__segment_internal_directive";

/// A compiled mapping value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    /// JSON with no directive inside: resolves to itself.
    Raw(Value),
    Undefined,
    /// mapping-kit throws whenever this is resolved.
    Throw(Box<EvalError>),
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
        op: CaseOp,
        value: Option<Box<Node>>,
    },
    Replace {
        spec: Box<ReplaceSpec>,
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
    Liquid(Box<Liquid>),
}

/// A directive argument that is a string, or a directive resolving (we hope) to one.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Source<T> {
    Static(T),
    /// Resolved per event; a non-string result fails with `message` (plus its type).
    Dynamic {
        node: Box<Node>,
        at: Location,
        message: &'static str,
    },
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

/// `@case`'s operator: an unknown one fails only on a string value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CaseOp {
    Lower,
    Upper,
    Unknown(Location),
}

/// `@replace`'s options.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ReplaceSpec {
    Ready(Replace),
    /// An option of a type mapping-kit silently turns into "".
    Empty,
    /// A pattern or replacement over 10 UTF-16 units: fails on a string value.
    TooLong(Box<EvalError>),
}

/// Compiles a whole mapping; the node is meaningful only when no error was found.
pub(crate) fn compile(mapping: &Value) -> (Node, Vec<MappingError>) {
    let mut compiler = Compiler::default();
    let node = compiler.root(mapping);
    (node, compiler.errors)
}

/// Walks a mapping, collecting every validation problem with its location.
///
/// mapping-kit validates strictly only where `validate.ts` reaches: it does not look inside
/// arrays, nor inside raw objects given to `@literal` or `@excludeWhenNull`. There (`strict` is
/// false) this compiler accepts whatever mapping-kit's runtime accepts, and what that runtime
/// throws on becomes a [`Node::Throw`].
#[derive(Default)]
pub(super) struct Compiler {
    pub(super) errors: Vec<MappingError>,
    at: Vec<Segment>,
}

/// mapping-kit's `realTypeOf`.
pub(super) fn real_type(v: &Value) -> JsType {
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
pub(super) fn type_or_directive(v: &Value) -> JsType {
    match v {
        Value::Object(map) if has_at_key(map) => JsType::Directive,
        other => real_type(other),
    }
}

pub(super) fn has_at_key(map: &Map<String, Value>) -> bool {
    map.keys().any(|k| k.starts_with('@'))
}

/// The runtime's `isDirective`: `@` keys, with nothing else but `_metadata`.
pub(super) fn is_directive_shape(map: &Map<String, Value>) -> bool {
    has_at_key(map) && map.keys().all(|k| k.starts_with('@') || k == "_metadata")
}

/// JavaScript truthiness of a raw option (`undefined` when absent).
pub(super) fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(_) | Value::Object(_)) => true,
    }
}

/// JavaScript's `typeof` of a raw option.
pub(super) fn type_of(v: Option<&Value>) -> &'static str {
    match v {
        None => "undefined",
        Some(Value::Bool(_)) => "boolean",
        Some(Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Null | Value::Array(_) | Value::Object(_)) => "object",
    }
}

/// `{...mapping}`: what mapping-kit's `getMappingToProcess` makes of a top-level mapping that
/// is not an object. Arrays and strings spread into their indexes; other values into nothing.
fn spread(mapping: &Value) -> Value {
    match mapping {
        Value::Object(_) => mapping.clone(),
        Value::Array(items) => Value::Object(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| (i.to_string(), v.clone()))
                .collect(),
        ),
        Value::String(s) => Value::Object(
            js::utf16_units(s)
                .enumerate()
                .map(|(i, unit)| (i.to_string(), Value::String(unit)))
                .collect(),
        ),
        _ => Value::Object(Map::new()),
    }
}

impl Compiler {
    pub(super) fn location(&self) -> Location {
        Location::from_segments(self.at.clone())
    }

    pub(super) fn error(&mut self, reason: Reason) {
        self.errors.push(MappingError::new(self.location(), reason));
    }

    /// A node that fails, here, with mapping-kit's runtime `message`.
    pub(super) fn throw(&self, message: impl Into<String>) -> Node {
        Node::Throw(Box::new(EvalError::Directive {
            at: self.location(),
            message: message.into(),
        }))
    }

    pub(super) fn within<R>(&mut self, segment: Segment, f: impl FnOnce(&mut Self) -> R) -> R {
        self.at.push(segment);
        let result = f(self);
        self.at.pop();
        result
    }

    pub(super) fn key<R>(&mut self, key: &str, f: impl FnOnce(&mut Self) -> R) -> R {
        self.within(Segment::Key(key.to_owned()), f)
    }

    pub(super) fn error_at(&mut self, key: &str, reason: Reason) {
        self.key(key, |c| c.error(reason));
    }

    /// A top-level mapping (also `@transform`'s `apply`), with the root directive handled.
    pub(super) fn root(&mut self, mapping: &Value) -> Node {
        match mapping {
            Value::Object(map) if map.contains_key(ROOT_DIRECTIVE_KEY) => self.internal_root(map),
            Value::Object(_) => self.mapping(mapping, true),
            Value::Null => {
                self.error(Reason::NullMapping);
                Node::Undefined
            }
            other => self.mapping(&spread(other), true),
        }
    }

    /// A top-level mapping compiled apart, for `@transform`'s `apply` met where mapping-kit's
    /// validation does not reach: `transform` validates it only when the event gets there.
    pub(super) fn root_deferred(&mut self, mapping: &Value) -> Node {
        let mut inner = Compiler::default();
        let node = inner.root(mapping);
        match inner.errors.into_iter().next() {
            None => node,
            Some(error) => Node::Throw(Box::new(EvalError::Invalid {
                at: self.location(),
                error,
            })),
        }
    }

    /// Any mapping value. `strict` is true where mapping-kit's `validate` reaches.
    pub(super) fn mapping(&mut self, v: &Value, strict: bool) -> Node {
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
                // With several `@` keys (only where validation does not reach), the runtime
                // runs the first.
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
                raw_array(nodes)
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
            "@path" => match c.string_source(opts, strict, "@path") {
                Ok(Source::Static(s)) => Node::Path(Source::Static(Path::for_directive(&s))),
                Ok(Source::Dynamic { node, at, message }) => {
                    Node::Path(Source::Dynamic { node, at, message })
                }
                Err(node) => node,
            },
            "@template" => match c.string_source(opts, strict, "@template") {
                Ok(Source::Static(s)) => Node::Template(Source::Static(Template::parse(&s))),
                Ok(Source::Dynamic { node, at, message }) => {
                    Node::Template(Source::Dynamic { node, at, message })
                }
                Err(node) => node,
            },
            "@literal" => c.raw_or_directive(opts, strict),
            "@excludeWhenNull" => Node::ExcludeWhenNull(Box::new(c.raw_or_directive(opts, strict))),
            "@flatten" => c.d_flatten(opts, strict),
            "@json" => c.d_json(opts, strict),
            "@merge" => c.d_merge(opts, strict),
            "@transform" => c.d_transform(opts, strict),
            "@liquid" => c.d_liquid(opts, strict),
            _ if strict => {
                c.error(Reason::UnknownDirective(name.to_owned()));
                Node::Undefined
            }
            _ => c.throw(format!("{name} is not a valid directive, got undefined")),
        })
    }

    /// `validateDirectiveOrRaw`: a directive is validated, a raw object or array is not.
    pub(super) fn raw_or_directive(&mut self, v: &Value, strict: bool) -> Node {
        let strict = strict && type_or_directive(v) == JsType::Directive;
        self.mapping(v, strict)
    }

    /// The argument of `@path` and `@template`, which must resolve to a string. Anything else
    /// is a validation error where validation reaches; elsewhere it resolves to itself and
    /// fails the runtime's string check.
    fn string_source(
        &mut self,
        v: &Value,
        strict: bool,
        name: &'static str,
    ) -> Result<Source<String>, Node> {
        match v {
            Value::String(s) => Ok(Source::Static(s.clone())),
            Value::Object(map) if has_at_key(map) && (strict || is_directive_shape(map)) => {
                let node = self.mapping(v, strict);
                Ok(Source::Dynamic {
                    node: Box::new(node),
                    at: self.location(),
                    message: name,
                })
            }
            other if strict => {
                self.error(Reason::WrongType {
                    expected: Expected::StringOrDirective,
                    found: type_or_directive(other),
                });
                Err(Node::Undefined)
            }
            other => Err(self.throw(format!("{name}: expected string, got {}", real_type(other)))),
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
                let apply = match options.get("apply") {
                    Some(v @ Value::Object(_)) => c.key("apply", |c| c.root(v)),
                    _ if bad_apply => Node::Undefined,
                    Some(v) if truthy(Some(v)) => {
                        c.throw("@transform \"apply\" key should be an object")
                    }
                    _ => c.throw("@transform requires a \"apply\" key"),
                };
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

/// An array whose items are all raw is raw itself.
fn raw_array(nodes: Vec<Node>) -> Node {
    if nodes.iter().all(|n| matches!(n, Node::Raw(_))) {
        Node::Raw(Value::Array(
            nodes
                .into_iter()
                .filter_map(|n| match n {
                    Node::Raw(v) => Some(v),
                    _ => None,
                })
                .collect(),
        ))
    } else {
        Node::Array(nodes)
    }
}
