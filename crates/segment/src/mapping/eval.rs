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
    /// Resolves this node against `payload`.
    pub(crate) fn eval<'a>(&'a self, payload: Handle<'_, 'a>) -> Result<Val<'a>, EvalError> {
        Ok(match self {
            Node::Raw(v) => Val::Ref(v),
            Node::Undefined => Val::Undef,
            Node::Throw(error) => return Err((**error).clone()),
            Node::Liquid(liquid) => Val::Str(liquid.render(payload)?),
            Node::Object(entries) => {
                let mut obj = Obj::with_capacity(entries.len());
                for (key, node) in entries {
                    obj.push(Cow::Borrowed(key.as_str()), node.eval(payload)?);
                }
                Val::Obj(obj)
            }
            Node::Array(items) => Val::Arr(
                items
                    .iter()
                    .map(|node| node.eval(payload))
                    .collect::<Result<_, _>>()?,
            ),
            Node::Path(Source::Static(path)) => path.get(payload).into_val(),
            Node::Path(Source::Dynamic { node, at, message }) => {
                let resolved = node.eval(payload)?;
                let path = expect_str(&resolved, at, message)?;
                Path::for_directive(path).get(payload).into_val()
            }
            Node::Template(Source::Static(template)) => Val::Str(template.render(payload)),
            Node::Template(Source::Dynamic { node, at, message }) => {
                let resolved = node.eval(payload)?;
                let template = expect_str(&resolved, at, message)?;
                Val::Str(Template::parse(template).render(payload))
            }
            Node::If {
                exists,
                test,
                then,
                otherwise,
                then_is_test,
            } => {
                let tested = test.eval(payload)?;
                let h = Handle::of(&tested);
                let condition = !h.view().is_nullish() && (*exists || js::loosely_non_empty(h));
                if condition && *then_is_test {
                    return Ok(tested);
                }
                match if condition { then } else { otherwise } {
                    Some(branch) => branch.eval(payload)?,
                    None => Val::Undef,
                }
            }
            Node::Case { op, value } => match value {
                None => Val::Undef,
                Some(node) => {
                    let resolved = node.eval(payload)?;
                    let cased = match (resolved.view(), op) {
                        (View::Str(s), CaseOp::Upper) => Some(s.to_uppercase()),
                        (View::Str(s), CaseOp::Lower) => Some(s.to_lowercase()),
                        (View::Str(_), CaseOp::Unknown(at)) => {
                            return Err(EvalError::Directive {
                                at: at.clone(),
                                message:
                                    "operator key should have a value of \"lower\" or \"upper\""
                                        .to_owned(),
                            });
                        }
                        _ => None,
                    };
                    match cased {
                        Some(s) => Val::Str(s),
                        None => resolved,
                    }
                }
            },
            Node::Replace { spec, value } => match value {
                None => Val::Undef,
                Some(node) => {
                    let resolved = node.eval(payload)?;
                    let text: Option<Cow<'_, str>> = match resolved.view() {
                        View::Str(s) => Some(Cow::Borrowed(s)),
                        View::Bool(b) => Some(Cow::Borrowed(if b { "true" } else { "false" })),
                        View::Num(n) => Some(Cow::Owned(js::number_to_string(n))),
                        _ => None,
                    };
                    match (spec.as_ref(), text) {
                        (ReplaceSpec::Ready(spec), Some(text)) => Val::Str(spec.apply(&text)),
                        (ReplaceSpec::TooLong(error), Some(_)) => return Err((**error).clone()),
                        _ => Val::Str(String::new()),
                    }
                }
            },
            Node::ArrayPath { root, shape } => match root {
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
            },
            Node::Flatten {
                separator,
                value,
                omit_arrays,
            } => {
                let dynamic;
                let separator: &str = match separator {
                    Source::Static(s) => s,
                    Source::Dynamic { node, at, message } => {
                        dynamic = node.eval(payload)?;
                        expect_str(&dynamic, at, message)?
                    }
                };
                let resolved = value.eval(payload)?;
                Val::Obj(objects::flatten(
                    Handle::of(&resolved),
                    separator,
                    *omit_arrays,
                ))
            }
            Node::Json { mode, value } => {
                let resolved = value.eval(payload)?;
                match mode {
                    JsonMode::Encode => {
                        js::stringify(Handle::of(&resolved)).map_or(Val::Undef, Val::Str)
                    }
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
                }
            }
            Node::Merge { direction, objects } => {
                let left = match direction {
                    Direction::Left => true,
                    Direction::Right => false,
                    Direction::Dynamic(node) => {
                        matches!(node.eval(payload)?.view(), View::Str("left"))
                    }
                };
                let mut sources = objects
                    .iter()
                    .map(|node| node.eval(payload))
                    .collect::<Result<Vec<_>, _>>()?;
                if left {
                    sources.reverse();
                }
                Val::Obj(objects::assign_all(&sources))
            }
            Node::Transform { apply, mapping, at } => {
                let kind = payload.view();
                if !matches!(kind, View::Object) {
                    return Err(EvalError::PayloadNotObject {
                        at: at.clone(),
                        found: kind.js_type(),
                    });
                }
                let new_payload = apply.eval(payload)?.remove_undefined();
                mapping.eval(Handle::of(&new_payload))?
            }
            Node::ExcludeWhenNull(node) => {
                let resolved = node.eval(payload)?;
                if matches!(resolved.view(), View::Null) {
                    Val::Undef
                } else {
                    objects::clean_nulls(resolved)
                }
            }
        })
    }
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
