//! mapping-kit's validation rules (`validate.ts`), each returning the problem found, and the
//! compiler's helpers that apply them to a directive's options.

use serde_json::{Map, Value};

use super::compile::{Compiler, Node, has_at_key, real_type, truthy, type_or_directive};
use super::error::{Expected, JsType, Reason};
use super::js;

pub(super) fn want_string(v: &Value) -> Option<Reason> {
    match type_or_directive(v) {
        JsType::String => None,
        found => Some(Reason::WrongType {
            expected: Expected::String,
            found,
        }),
    }
}

pub(super) fn want_bool(v: &Value) -> Option<Reason> {
    match type_or_directive(v) {
        JsType::Boolean => None,
        found => Some(Reason::WrongType {
            expected: Expected::Boolean,
            found,
        }),
    }
}

pub(super) fn want_array(v: &Value) -> Option<Reason> {
    match real_type(v) {
        JsType::Array => None,
        found => Some(Reason::WrongType {
            expected: Expected::Array,
            found,
        }),
    }
}

pub(super) fn want_string_or_directive(v: &Value) -> Option<Reason> {
    match type_or_directive(v) {
        JsType::String | JsType::Directive => None,
        found => Some(Reason::WrongType {
            expected: Expected::StringOrDirective,
            found,
        }),
    }
}

pub(super) fn want_object_or_directive(v: &Value) -> Option<Reason> {
    match type_or_directive(v) {
        JsType::Object | JsType::Directive => None,
        found => Some(Reason::WrongType {
            expected: Expected::ObjectOrDirective,
            found,
        }),
    }
}

pub(super) fn want_anything(_: &Value) -> Option<Reason> {
    None
}

pub(super) fn want_short_string(v: &Value, min: usize, max: usize) -> Option<Reason> {
    if let Some(reason) = want_string(v) {
        return Some(reason);
    }
    let len = v.as_str().map_or(0, js::utf16_len);
    if len < min {
        Some(Reason::StringTooShort { min })
    } else if len > max {
        Some(Reason::StringTooLong { max })
    } else {
        None
    }
}

pub(super) fn want_one_of(v: &Value, allowed: &'static [&'static str]) -> Option<Reason> {
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
    /// Strict check of one directive option (`validateObjectWithFields`); true when it found a
    /// problem.
    pub(super) fn check(
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
    pub(super) fn validate_rest(
        &mut self,
        options: &Map<String, Value>,
        used: &[&str],
        strict: bool,
    ) {
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

    /// The options object of a directive: a validation error where validation reaches, else
    /// mapping-kit's runtime `message` when the directive is resolved.
    pub(super) fn options<'v>(
        &mut self,
        opts: &'v Value,
        strict: bool,
        message: &str,
    ) -> Result<&'v Map<String, Value>, Node> {
        match opts {
            Value::Object(map) if !strict || !has_at_key(map) => Ok(map),
            other if strict => {
                self.error(Reason::WrongType {
                    expected: Expected::Object,
                    found: type_or_directive(other),
                });
                Err(Node::Undefined)
            }
            _ => Err(self.throw(message)),
        }
    }

    /// Compiles an option that mapping-kit resolves only when its raw value is truthy.
    pub(super) fn truthy_option(
        &mut self,
        m: &Map<String, Value>,
        key: &str,
        strict: bool,
    ) -> Option<Box<Node>> {
        m.get(key)
            .filter(|v| truthy(Some(v)))
            .map(|v| Box::new(self.key(key, |c| c.mapping(v, strict))))
    }
}
