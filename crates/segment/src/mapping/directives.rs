//! Compiling each directive: first the checks of mapping-kit's validator (errors, where
//! validation reaches), then the checks its runtime makes when it resolves the directive
//! (a [`Node::Throw`] with the runtime's own message, failing only the events that reach it).

use serde_json::{Map, Value};

use super::compile::{
    ArrayRoot, CaseOp, Compiler, Direction, JsonMode, Node, ReplaceSpec, Source, real_type, truthy,
    type_of, want_anything, want_array, want_bool, want_object_or_directive, want_one_of,
    want_short_string, want_string, want_string_or_directive,
};
use super::error::{EvalError, Expected, JsType, Reason, Segment};
use super::js;
use super::liquid::{Liquid, MAX_TEMPLATE_LENGTH};
use super::path::Path;
use super::replace::{MAX_LENGTH, Replace};

impl Compiler {
    pub(super) fn d_if(&mut self, opts: &Value, strict: bool) -> Node {
        let m = match self.options(
            opts,
            strict,
            "@if requires an object with an \"exists\" key",
        ) {
            Ok(m) => m,
            Err(node) => return node,
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
            self.validate_rest(m, &[], strict);
            return self.throw("@if requires an \"exists\" key or a \"blank\" key");
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

    pub(super) fn d_case(&mut self, opts: &Value, strict: bool) -> Node {
        let m = match self.options(
            opts,
            strict,
            "@case requires an object with a \"operator\" key",
        ) {
            Ok(m) => m,
            Err(node) => return node,
        };
        if strict {
            self.check(m, "operator", false, want_string);
            self.check(m, "value", false, want_string_or_directive);
        }
        let value = self.truthy_option(m, "value", strict);
        let used: &[&str] = if value.is_some() { &["value"] } else { &[] };
        self.validate_rest(m, used, strict);
        let op = match m.get("operator") {
            operator if !truthy(operator) => {
                return self.throw("@case requires a \"operator\" key");
            }
            Some(Value::String(s)) if s == "lower" => CaseOp::Lower,
            Some(Value::String(s)) if s == "upper" => CaseOp::Upper,
            _ => CaseOp::Unknown(self.location()),
        };
        Node::Case { op, value }
    }

    pub(super) fn d_replace(&mut self, opts: &Value, strict: bool) -> Node {
        let m = match self.options(
            opts,
            strict,
            "@replace requires an object with a \"pattern\" key",
        ) {
            Ok(m) => m,
            Err(node) => return node,
        };
        if strict {
            self.check(m, "pattern", true, |v| want_short_string(v, 1, MAX_LENGTH));
            self.check(m, "replacement", false, |v| {
                want_short_string(v, 0, MAX_LENGTH)
            });
            self.check(m, "value", true, want_string_or_directive);
            self.check(m, "ignorecase", false, want_bool);
            self.check(m, "global", false, want_bool);
        }
        let value = self.truthy_option(m, "value", strict);
        let used: &[&str] = if value.is_some() { &["value"] } else { &[] };
        self.validate_rest(m, used, strict);
        if !truthy(m.get("pattern")) {
            return self.throw("@replace requires a \"pattern\" key");
        }
        Node::Replace {
            spec: Box::new(self.replace_spec(m)),
            value,
        }
    }

    /// `@replace`'s options as its runtime reads them, defaults filled in.
    fn replace_spec(&self, m: &Map<String, Value>) -> ReplaceSpec {
        let text_or_empty = |key: &str| match m.get(key) {
            None | Some(Value::Null) => Some(""),
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => None,
        };
        let flag = |key: &str, default: bool| match m.get(key) {
            None | Some(Value::Null) => Some(default),
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => None,
        };
        let (Some(pattern), Some(replacement), Some(ignore_case), Some(global)) = (
            m.get("pattern").and_then(Value::as_str),
            text_or_empty("replacement"),
            flag("ignorecase", false),
            flag("global", true),
        ) else {
            return ReplaceSpec::Empty;
        };
        let too_long = |s: &str| js::utf16_len(s) > MAX_LENGTH;
        let fail = |what: &str| {
            ReplaceSpec::TooLong(Box::new(EvalError::Directive {
                at: self.location(),
                message: format!(
                    "@replace requires a \"{what}\" less than {MAX_LENGTH} characters"
                ),
            }))
        };
        if too_long(pattern) {
            return fail("pattern");
        }
        if too_long(replacement) {
            return fail("replacement");
        }
        let second = match (m.get("pattern2"), text_or_empty("replacement2")) {
            (Some(Value::String(p2)), Some(r2)) if !p2.is_empty() => {
                if too_long(p2) {
                    return fail("pattern");
                }
                if too_long(r2) {
                    return fail("replacement");
                }
                Some((p2.as_str(), r2))
            }
            _ => None,
        };
        ReplaceSpec::Ready(Replace::new(
            pattern,
            replacement,
            second,
            global,
            ignore_case,
        ))
    }

    pub(super) fn d_array_path(&mut self, opts: &Value, strict: bool) -> Node {
        let Value::Array(items) = opts else {
            if strict {
                self.error(Reason::WrongType {
                    expected: Expected::Array,
                    found: real_type(opts),
                });
                return Node::Undefined;
            }
            return self.throw(format!(
                "@arrayPath expected array, got {}",
                real_type(opts)
            ));
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

    pub(super) fn d_flatten(&mut self, opts: &Value, strict: bool) -> Node {
        let m = match self.options(
            opts,
            strict,
            "@flatten requires an object with a \"separator\" key",
        ) {
            Ok(m) => m,
            Err(node) => return node,
        };
        if strict {
            self.check(m, "separator", false, want_string);
            self.check(m, "value", true, want_anything);
        }
        let raw_separator = m.get("separator");
        let mut used = vec!["value"];
        let separator = match raw_separator {
            Some(Value::String(s)) => Some(Source::Static(s.clone())),
            Some(v) if truthy(Some(v)) => {
                used.push("separator");
                let node = self.key("separator", |c| c.mapping(v, strict));
                Some(Source::Dynamic {
                    node: Box::new(node),
                    at: self.location(),
                    message: "@flatten",
                })
            }
            _ => None,
        };
        let value = match m.get("value") {
            Some(v) => self.key("value", |c| c.mapping(v, strict)),
            None => Node::Undefined,
        };
        self.validate_rest(m, &used, strict);
        match separator {
            Some(separator) if truthy(raw_separator) => Node::Flatten {
                separator,
                value: Box::new(value),
                omit_arrays: truthy(m.get("omitArrays")),
            },
            _ => self.throw("@flatten requires a \"separator\" key"),
        }
    }

    pub(super) fn d_json(&mut self, opts: &Value, strict: bool) -> Node {
        let m = match self.options(
            opts,
            strict,
            "@json requires an object with a \"value\" key",
        ) {
            Ok(m) => m,
            Err(node) => return node,
        };
        if strict {
            self.check(m, "value", true, want_anything);
            self.check(m, "mode", true, |v| want_one_of(v, &["encode", "decode"]));
        }
        let value = self.truthy_option(m, "value", strict);
        let used: &[&str] = if value.is_some() { &["value"] } else { &[] };
        self.validate_rest(m, used, strict);
        if !truthy(m.get("mode")) {
            return self.throw("@json requires a \"mode\" key");
        }
        let Some(value) = value else {
            return self.throw("@json requires a \"value\" key");
        };
        let mode = match m.get("mode").and_then(Value::as_str) {
            Some("encode") => JsonMode::Encode,
            Some("decode") => JsonMode::Decode,
            _ => JsonMode::Neither,
        };
        Node::Json { mode, value }
    }

    pub(super) fn d_merge(&mut self, opts: &Value, strict: bool) -> Node {
        let m = match self.options(
            opts,
            strict,
            "@merge requires an object with an \"objects\" key and a \"direction\" key",
        ) {
            Ok(m) => m,
            Err(node) => return node,
        };
        if strict {
            self.check(m, "direction", false, |v| {
                want_one_of(v, &["left", "right"])
            });
            self.check(m, "objects", true, want_array);
        }
        let raw_direction = m.get("direction");
        let mut used = vec!["objects"];
        let direction = match raw_direction {
            Some(Value::String(s)) if s == "left" => Direction::Left,
            Some(Value::String(_)) | None => Direction::Right,
            Some(v) => {
                used.push("direction");
                Direction::Dynamic(Box::new(self.key("direction", |c| c.mapping(v, strict))))
            }
        };
        let mut objects = Vec::new();
        if let Some(Value::Array(items)) = m.get("objects") {
            self.key("objects", |c| {
                for (i, item) in items.iter().enumerate() {
                    let node = c.within(Segment::Index(i), |c| {
                        if let Some(reason) = want_object_or_directive(item).filter(|_| strict) {
                            c.error(reason);
                        }
                        c.mapping(item, strict)
                    });
                    objects.push(node);
                }
            });
        }
        self.validate_rest(m, &used, strict);
        if !truthy(raw_direction) {
            return self.throw("@merge requires a \"direction\" key");
        }
        match m.get("objects") {
            Some(Value::Array(_)) => Node::Merge { direction, objects },
            other if truthy(other) => self.throw(format!(
                "@merge: expected opts.array, got {}",
                type_of(other)
            )),
            _ => self.throw("@merge requires a \"objects\" key"),
        }
    }

    pub(super) fn d_transform(&mut self, opts: &Value, strict: bool) -> Node {
        let m = match self.options(
            opts,
            strict,
            "@transform requires an object with an \"apply\" key and a \"mapping\" key",
        ) {
            Ok(m) => m,
            Err(node) => return node,
        };
        let mut bad_apply = false;
        if strict {
            bad_apply = self.check(m, "apply", true, want_object_or_directive);
            self.check(m, "mapping", true, want_object_or_directive);
        }
        let mapping = self.truthy_option(m, "mapping", strict);
        // `transform` validates `apply` itself when it runs: where the outer validation
        // reached, it has been validated already.
        let apply = match m.get("apply") {
            Some(v @ Value::Object(_)) if !bad_apply => Some(self.key("apply", |c| {
                if strict {
                    c.root(v)
                } else {
                    c.root_deferred(v)
                }
            })),
            _ => None,
        };
        self.validate_rest(m, &["apply", "mapping"], strict);
        let Some(mapping) = mapping else {
            return self.throw("@transform requires a \"mapping\" key");
        };
        match (apply, m.get("apply")) {
            (Some(apply), _) => Node::Transform {
                apply: Box::new(apply),
                mapping,
                at: self.location(),
            },
            (None, raw) if !truthy(raw) => self.throw("@transform requires a \"apply\" key"),
            (None, _) => self.throw("@transform \"apply\" key should be an object"),
        }
    }

    pub(super) fn d_liquid(&mut self, opts: &Value, strict: bool) -> Node {
        if strict && let Some(reason) = want_string(opts) {
            self.error(reason);
            return Node::Undefined;
        }
        let Value::String(template) = opts else {
            return self.throw("liquid template value must be a string");
        };
        if template.is_empty() {
            return Node::Raw(Value::String(String::new()));
        }
        if js::utf16_len(template) > MAX_TEMPLATE_LENGTH {
            return self.throw(format!(
                "liquid template values are limited to {MAX_TEMPLATE_LENGTH} characters"
            ));
        }
        match Liquid::parse(template, self.location()) {
            Ok(liquid) => Node::Liquid(Box::new(liquid)),
            Err(message) => self.throw(message),
        }
    }
}
