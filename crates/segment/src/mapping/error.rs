//! Errors of the mapping-kit evaluator: invalid mappings found by `Mapping::compile`, and the
//! few event-dependent failures found by `Mapping::resolve`, each with the place it concerns.

use std::fmt;

use thiserror::Error;

/// One step of a [`Location`] inside a mapping.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// A key of a plain object, or an option of a directive (`exists`, `value`, …).
    Key(String),
    /// An element of an array (also the slots of `@arrayPath`).
    Index(usize),
    /// A directive such as `@if`.
    Directive(String),
}

/// Where something sits inside a mapping, from its root.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Location {
    segments: Vec<Segment>,
}

impl Location {
    /// The root of the mapping.
    pub fn root() -> Self {
        Self::default()
    }

    pub(crate) fn from_segments(segments: Vec<Segment>) -> Self {
        Self { segments }
    }

    /// Every step from the root.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The mapping field: the keys (and array indexes) before the first directive, joined with
    /// dots, e.g. `dataFields.plan`; empty at the root.
    pub fn field(&self) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Key(key) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                }
                Segment::Index(index) => {
                    out.push('[');
                    out.push_str(&index.to_string());
                    out.push(']');
                }
                Segment::Directive(_) => break,
            }
        }
        out
    }

    /// The innermost directive on the way, e.g. `@if`.
    pub fn directive(&self) -> Option<&str> {
        self.segments
            .iter()
            .rev()
            .find_map(|segment| match segment {
                Segment::Directive(name) => Some(name.as_str()),
                _ => None,
            })
    }

    /// Segment's own notation: `/dataFields/plan/@if/exists` (`/` alone for the root).
    pub fn pointer(&self) -> String {
        pointer(&self.segments)
    }
}

fn pointer(segments: &[Segment]) -> String {
    if segments.is_empty() {
        return "/".to_owned();
    }
    let mut out = String::new();
    for segment in segments {
        out.push('/');
        match segment {
            Segment::Key(key) | Segment::Directive(key) => out.push_str(key),
            Segment::Index(index) => out.push_str(&index.to_string()),
        }
    }
    out
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pointer())
    }
}

/// A JavaScript type name as mapping-kit reports it (`realTypeOf`, plus `directive`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JsType {
    Undefined,
    Null,
    Boolean,
    Number,
    String,
    Array,
    Object,
    /// An object with an `@`-prefixed key.
    Directive,
}

impl JsType {
    /// The bare name, e.g. `number`.
    pub fn name(self) -> &'static str {
        match self {
            JsType::Undefined => "undefined",
            JsType::Null => "null",
            JsType::Boolean => "boolean",
            JsType::Number => "number",
            JsType::String => "string",
            JsType::Array => "array",
            JsType::Object => "object",
            JsType::Directive => "directive",
        }
    }

    /// The name with mapping-kit's article, e.g. `an array`.
    pub fn with_article(self) -> &'static str {
        match self {
            JsType::Undefined => "an undefined",
            JsType::Null => "a null",
            JsType::Boolean => "a boolean",
            JsType::Number => "a number",
            JsType::String => "a string",
            JsType::Array => "an array",
            JsType::Object => "an object",
            JsType::Directive => "a directive",
        }
    }
}

impl fmt::Display for JsType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a mapping value should have been.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Expected {
    String,
    Boolean,
    Array,
    Object,
    StringOrDirective,
    ObjectOrDirective,
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Expected::String => "a string",
            Expected::Boolean => "a boolean",
            Expected::Array => "an array",
            Expected::Object => "an object",
            Expected::StringOrDirective => "a string or a mapping directive",
            Expected::ObjectOrDirective => "an object or a mapping directive",
        })
    }
}

/// Why a mapping is invalid.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Error)]
pub enum Reason {
    #[error("has an invalid directive: {0}")]
    UnknownDirective(String),
    /// A directive object with other keys besides its `@` key and `_metadata`, or with several
    /// `@` keys (mapping-kit's wording counts them).
    #[error("should only have one @-prefixed key but it has {keys} keys")]
    MixedKeys { keys: usize },
    #[error("should be {expected} but it is {}", .found.with_article())]
    WrongType { expected: Expected, found: JsType },
    #[error("should have field \"{0}\" but it doesn't")]
    MissingField(&'static str),
    #[error("should be a string of length {min} or greater")]
    StringTooShort { min: usize },
    #[error("should be a string of length {max} or less")]
    StringTooLong { max: usize },
    #[error("should be one of {} but it is {found}", .allowed.join(", "))]
    NotAllowed {
        allowed: &'static [&'static str],
        /// The value as JSON text.
        found: String,
    },
    #[error("the root directive (__segment_internal_directive) {0}")]
    RootDirective(&'static str),
    /// A mapping that is `null` (mapping-kit's `Object.keys(null)` throws).
    #[error("the mapping is null: Cannot convert undefined or null to object")]
    NullMapping,
}

/// An invalid mapping: where, in which directive, and why.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Error)]
pub struct MappingError {
    location: Location,
    reason: Reason,
}

impl MappingError {
    pub(crate) fn new(location: Location, reason: Reason) -> Self {
        Self { location, reason }
    }

    /// Where the problem is.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The mapping field, e.g. `dataFields.plan` (empty at the root).
    pub fn field(&self) -> String {
        self.location.field()
    }

    /// The innermost directive concerned, e.g. `@if`.
    pub fn directive(&self) -> Option<&str> {
        self.location.directive()
    }

    /// What is wrong.
    pub fn reason(&self) -> &Reason {
        &self.reason
    }

    /// The message in mapping-kit's own shape, e.g.
    /// `/email/@if should be an object but it is a string.` (mapping-kit reports a malformed or
    /// unknown directive at the object holding it, so that directive is left out of the path).
    pub fn segment_message(&self) -> String {
        let segments = self.location.segments();
        let at_holder = matches!(
            self.reason,
            Reason::MixedKeys { .. } | Reason::UnknownDirective(_)
        ) && matches!(segments.last(), Some(Segment::Directive(_)));
        let segments = if at_holder {
            &segments[..segments.len() - 1]
        } else {
            segments
        };
        format!("{} {}.", pointer(segments), self.reason)
    }
}

impl fmt::Display for MappingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = self.location.field();
        if field.is_empty() {
            f.write_str("mapping root")?;
        } else {
            write!(f, "mapping field `{field}`")?;
        }
        if let Some(directive) = self.location.directive() {
            write!(f, ", directive {directive}")?;
        }
        write!(f, ": {} (at {})", self.reason, self.location)
    }
}

/// A failure that depends on the event: mapping-kit throws here for this event only (also a
/// directive that throws whenever an event reaches it, like an `@if` without condition).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Error)]
pub enum EvalError {
    /// A dynamic `@path`, `@template` or `@flatten` separator that did not resolve to a string.
    #[error("{} (at {at})", not_a_string(directive, *found))]
    NotAString {
        at: Location,
        directive: &'static str,
        found: JsType,
    },
    /// The payload handed to the mapping (or to `@transform`) is not an object.
    #[error("data must be an object, got {found} (at {at})")]
    PayloadNotObject { at: Location, found: JsType },
    /// A directive mapping-kit's runtime throws on, with its message (e.g. `@if requires an
    /// "exists" key or a "blank" key`), or a failed `@liquid` template.
    #[error("{message} (at {at})")]
    Directive { at: Location, message: String },
    /// An `@transform`'s `apply` that fails validation, met where mapping-kit validates it
    /// only when it runs; `error`'s location is inside `apply`, as mapping-kit reports it.
    #[error("{} (at {at})", .error.segment_message())]
    Invalid { at: Location, error: MappingError },
}

fn not_a_string(directive: &str, found: JsType) -> String {
    if directive == "@flatten" {
        "@flatten requires a string separator".to_owned()
    } else {
        format!("{directive}: expected string, got {found}")
    }
}

impl EvalError {
    /// The message mapping-kit's runtime throws, without the location.
    pub fn segment_message(&self) -> String {
        match self {
            EvalError::NotAString {
                directive, found, ..
            } => not_a_string(directive, *found),
            EvalError::PayloadNotObject { found, .. } => {
                format!("data must be an object, got {found}")
            }
            EvalError::Directive { message, .. } => message.clone(),
            EvalError::Invalid { error, .. } => error.segment_message(),
        }
    }

    /// Where in the mapping it failed.
    pub fn location(&self) -> &Location {
        match self {
            EvalError::NotAString { at, .. }
            | EvalError::PayloadNotObject { at, .. }
            | EvalError::Directive { at, .. }
            | EvalError::Invalid { at, .. } => at,
        }
    }
}
