//! Evaluating a compiled mapping against one payload, directive by directive, with
//! mapping-kit's rules for `undefined`, truthiness and types.

use std::borrow::Cow;

use serde_json::Value;

use super::compile::{ArrayRoot, CaseOp, Direction, JsonMode, Node, ReplaceSpec, Source};
use super::error::{EvalError, Location};
use super::js;
use super::objects;
use super::path::Path;
use super::template::Template;
use super::value::{Handle, Obj, Val, View};

impl Node {
    /// Resolves this node against `payload`: literals here, each directive family in its own
    /// function below.
    pub(crate) fn eval<'a>(&'a self, payload: Handle<'_, 'a>) -> Result<Val<'a>, EvalError> {
        match self {
            Node::Raw(v) => Ok(Val::Ref(v)),
            Node::Undefined => Ok(Val::Undef),
            Node::Throw(error) => Err((**error).clone()),
            Node::Liquid(liquid) => Ok(Val::Str(liquid.render(payload)?)),
            Node::Object(entries) => eval_object(entries, payload),
            Node::Array(items) => eval_array(items, payload),
            Node::Path(source) => eval_path(source, payload),
            Node::Template(source) => eval_template(source, payload),
            Node::If {
                exists,
                test,
                then,
                otherwise,
                then_is_test,
            } => eval_if(
                *exists,
                test,
                then.as_deref(),
                otherwise.as_deref(),
                *then_is_test,
                payload,
            ),
            Node::Case { op, value } => eval_case(op, value.as_deref(), payload),
            Node::Replace { spec, value } => eval_replace(spec, value.as_deref(), payload),
            Node::ArrayPath { root, shape } => eval_array_path(root, shape, payload),
            Node::Flatten {
                separator,
                value,
                omit_arrays,
            } => eval_flatten(separator, value, *omit_arrays, payload),
            Node::Json { mode, value } => eval_json(*mode, value, payload),
            Node::Merge { direction, objects } => eval_merge(direction, objects, payload),
            Node::Transform { apply, mapping, at } => eval_transform(apply, mapping, at, payload),
            Node::ExcludeWhenNull(node) => eval_exclude_when_null(node, payload),
        }
    }
}

/// A literal object: each value resolved, keys borrowed from the mapping.
fn eval_object<'a>(
    entries: &'a [(String, Node)],
    payload: Handle<'_, 'a>,
) -> Result<Val<'a>, EvalError> {
    let mut obj = Obj::with_capacity(entries.len());
    for (key, node) in entries {
        obj.push(Cow::Borrowed(key.as_str()), node.eval(payload)?);
    }
    Ok(Val::Obj(obj))
}

/// A literal array: each item resolved.
fn eval_array<'a>(items: &'a [Node], payload: Handle<'_, 'a>) -> Result<Val<'a>, EvalError> {
    Ok(Val::Arr(
        items
            .iter()
            .map(|node| node.eval(payload))
            .collect::<Result<_, _>>()?,
    ))
}

/// `@path`: the value at a path written in the mapping, or at one a directive resolves to.
fn eval_path<'a>(source: &'a Source<Path>, payload: Handle<'_, 'a>) -> Result<Val<'a>, EvalError> {
    Ok(match source {
        Source::Static(path) => path.get(payload).into_val(),
        Source::Dynamic { node, at, message } => {
            let resolved = node.eval(payload)?;
            let path = expect_str(&resolved, at, message)?;
            Path::for_directive(path).get(payload).into_val()
        }
    })
}

/// `@template`: `{{path}}` placeholders filled from the payload.
fn eval_template<'a>(
    source: &'a Source<Template>,
    payload: Handle<'_, 'a>,
) -> Result<Val<'a>, EvalError> {
    Ok(match source {
        Source::Static(template) => Val::Str(template.render(payload)),
        Source::Dynamic { node, at, message } => {
            let resolved = node.eval(payload)?;
            let template = expect_str(&resolved, at, message)?;
            Val::Str(Template::parse(template).render(payload))
        }
    })
}

/// `@if`: `then` when the test exists (or is not blank), else `otherwise`; a missing branch is
/// undefined.
fn eval_if<'a>(
    exists: bool,
    test: &'a Node,
    then: Option<&'a Node>,
    otherwise: Option<&'a Node>,
    then_is_test: bool,
    payload: Handle<'_, 'a>,
) -> Result<Val<'a>, EvalError> {
    let tested = test.eval(payload)?;
    let h = Handle::of(&tested);
    let condition = !h.view().is_nullish() && (exists || js::loosely_non_empty(h));
    if condition && then_is_test {
        return Ok(tested);
    }
    match if condition { then } else { otherwise } {
        Some(branch) => branch.eval(payload),
        None => Ok(Val::Undef),
    }
}

/// `@case`: a string upper- or lower-cased; anything else passes through.
fn eval_case<'a>(
    op: &CaseOp,
    value: Option<&'a Node>,
    payload: Handle<'_, 'a>,
) -> Result<Val<'a>, EvalError> {
    let Some(node) = value else {
        return Ok(Val::Undef);
    };
    let resolved = node.eval(payload)?;
    let cased = match (resolved.view(), op) {
        (View::Str(s), CaseOp::Upper) => Some(s.to_uppercase()),
        (View::Str(s), CaseOp::Lower) => Some(s.to_lowercase()),
        (View::Str(_), CaseOp::Unknown(at)) => {
            return Err(EvalError::Directive {
                at: at.clone(),
                message: "operator key should have a value of \"lower\" or \"upper\"".to_owned(),
            });
        }
        _ => None,
    };
    Ok(match cased {
        Some(s) => Val::Str(s),
        None => resolved,
    })
}

/// `@replace`: on the text of a string, boolean or number; anything else becomes `""`.
fn eval_replace<'a>(
    spec: &ReplaceSpec,
    value: Option<&'a Node>,
    payload: Handle<'_, 'a>,
) -> Result<Val<'a>, EvalError> {
    let Some(node) = value else {
        return Ok(Val::Undef);
    };
    let resolved = node.eval(payload)?;
    let text: Option<Cow<'_, str>> = match resolved.view() {
        View::Str(s) => Some(Cow::Borrowed(s)),
        View::Bool(b) => Some(Cow::Borrowed(if b { "true" } else { "false" })),
        View::Num(n) => Some(Cow::Owned(js::number_to_string(n))),
        _ => None,
    };
    match (spec, text) {
        (ReplaceSpec::Ready(spec), Some(text)) => Ok(Val::Str(spec.apply(&text))),
        (ReplaceSpec::TooLong(error), Some(_)) => Err((**error).clone()),
        _ => Ok(Val::Str(String::new())),
    }
}

/// `@arrayPath`: the root (a path or a directive), shaped item by item when a shape is given.
fn eval_array_path<'a>(
    root: &'a ArrayRoot,
    shape: &'a Option<Box<Node>>,
    payload: Handle<'_, 'a>,
) -> Result<Val<'a>, EvalError> {
    Ok(match root {
        ArrayRoot::Path(path) => {
            let found = path.get(payload);
            match apply_shape(found.handle(), shape)? {
                Some(items) => items,
                None => found.into_val(),
            }
        }
        ArrayRoot::Node(node) => {
            let resolved = node.eval(payload)?;
            match apply_shape(Handle::of(&resolved), shape)? {
                Some(items) => items,
                None => resolved,
            }
        }
    })
}

/// `@flatten`: nested keys joined by the separator (written, or resolved per event).
fn eval_flatten<'a>(
    separator: &'a Source<String>,
    value: &'a Node,
    omit_arrays: bool,
    payload: Handle<'_, 'a>,
) -> Result<Val<'a>, EvalError> {
    let dynamic;
    let separator: &str = match separator {
        Source::Static(s) => s,
        Source::Dynamic { node, at, message } => {
            dynamic = node.eval(payload)?;
            expect_str(&dynamic, at, message)?
        }
    };
    let resolved = value.eval(payload)?;
    Ok(Val::Obj(objects::flatten(
        Handle::of(&resolved),
        separator,
        omit_arrays,
    )))
}

/// `@json`: encode any value to text, or decode text (other values pass through).
fn eval_json<'a>(
    mode: JsonMode,
    value: &'a Node,
    payload: Handle<'_, 'a>,
) -> Result<Val<'a>, EvalError> {
    let resolved = value.eval(payload)?;
    Ok(match mode {
        JsonMode::Encode => js::stringify(Handle::of(&resolved)).map_or(Val::Undef, Val::Str),
        JsonMode::Decode => {
            let parsed = match resolved.view() {
                View::Str(s) => serde_json::from_str::<Value>(s).ok(),
                _ => None,
            };
            match parsed {
                Some(parsed) => Val::from_owned_json(parsed),
                // Non-strings pass through; unparsable text stays as it is.
                None => resolved,
            }
        }
        JsonMode::Neither => Val::Undef,
    })
}

/// `@merge`: objects assigned in order (`right`, the default) or in reverse (`left`).
fn eval_merge<'a>(
    direction: &'a Direction,
    objects: &'a [Node],
    payload: Handle<'_, 'a>,
) -> Result<Val<'a>, EvalError> {
    let left = match direction {
        Direction::Left => true,
        Direction::Right => false,
        Direction::Dynamic(node) => matches!(node.eval(payload)?.view(), View::Str("left")),
    };
    let mut sources = objects
        .iter()
        .map(|node| node.eval(payload))
        .collect::<Result<Vec<_>, _>>()?;
    if left {
        sources.reverse();
    }
    Ok(Val::Obj(objects::assign_all(&sources)))
}

/// `@transform`: the mapping resolved against the `apply` result as the new payload.
fn eval_transform<'a>(
    apply: &'a Node,
    mapping: &'a Node,
    at: &Location,
    payload: Handle<'_, 'a>,
) -> Result<Val<'a>, EvalError> {
    let kind = payload.view();
    if !matches!(kind, View::Object) {
        return Err(EvalError::PayloadNotObject {
            at: at.clone(),
            found: kind.js_type(),
        });
    }
    let new_payload = apply.eval(payload)?.remove_undefined();
    mapping.eval(Handle::of(&new_payload))
}

/// `@excludeWhenNull`: `null` becomes undefined; nulls inside objects and arrays are removed.
fn eval_exclude_when_null<'a>(
    node: &'a Node,
    payload: Handle<'_, 'a>,
) -> Result<Val<'a>, EvalError> {
    let resolved = node.eval(payload)?;
    Ok(if matches!(resolved.view(), View::Null) {
        Val::Undef
    } else {
        objects::clean_nulls(resolved)
    })
}

/// `@arrayPath` with an item shape: an object or array root becomes a list of items, each
/// resolved against the shape with the item as payload. `None` leaves the root as it is.
fn apply_shape<'a>(
    root: Handle<'_, 'a>,
    shape: &'a Option<Box<Node>>,
) -> Result<Option<Val<'a>>, EvalError> {
    let Some(shape) = shape else {
        return Ok(None);
    };
    match root.view() {
        View::Array => {
            let mut out = Vec::new();
            for item in root.items().into_iter().flatten() {
                out.push(shape.eval(item)?);
            }
            Ok(Some(Val::Arr(out)))
        }
        View::Object => Ok(Some(Val::Arr(vec![shape.eval(root)?]))),
        _ => Ok(None),
    }
}

fn expect_str<'v>(
    value: &'v Val<'_>,
    at: &Location,
    directive: &'static str,
) -> Result<&'v str, EvalError> {
    match value.view() {
        View::Str(s) => Ok(s),
        other => Err(EvalError::NotAString {
            at: at.clone(),
            directive,
            found: other.js_type(),
        }),
    }
}
