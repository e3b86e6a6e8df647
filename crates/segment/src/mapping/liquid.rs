//! `@liquid`: Liquid templates as Segment runs them (LiquidJS, with Segment's limits). The
//! `liquid` crate parses and runs the template with only the tags Segment allows; every filter
//! Segment allows is our own implementation of LiquidJS's (`filters`), so values print and
//! compute as in JavaScript; the tags and filters Segment disables fail with its messages.

mod bridge;
mod condition;
mod date;
mod filters;
mod jsval;
mod literals;
mod view;
mod web;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, OnceLock};

use liquid_core::model::{KString, KStringCow, KStringRef, ScalarCow, Value, ValueCow};
use liquid_core::parser::{ParseBlock, ParseFilter, ParseTag};
use liquid_core::runtime::{PartialStore, Registers, RuntimeBuilder, Template};
use liquid_core::{Language, Renderable, Runtime};

use super::error::{EvalError, Location};
use super::value::Handle;

/// Most UTF-16 units Segment allows in a `@liquid` template.
pub(crate) const MAX_TEMPLATE_LENGTH: usize = 1000;

/// Tags Segment disables (they fail when the template is parsed).
const DISABLED_TAGS: &[&str] = &["case", "for", "include", "layout", "render", "tablerow"];

/// A parsed template, ready to render against any payload.
#[derive(Clone)]
pub(crate) struct Liquid {
    source: String,
    template: Arc<Template>,
    at: Location,
}

impl fmt::Debug for Liquid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Liquid")
            .field("source", &self.source)
            .finish()
    }
}

impl PartialEq for Liquid {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && self.at == other.at
    }
}

/// The language with Segment's tags and filters, built once.
fn language() -> &'static Language {
    static LANGUAGE: OnceLock<Language> = OnceLock::new();
    LANGUAGE.get_or_init(|| language_with(&[]))
}

fn language_with(unknown_filters: &[String]) -> Language {
    use liquid_lib::stdlib;
    let mut lang = Language::empty();
    let tags: Vec<Box<dyn ParseTag>> = vec![
        Box::new(stdlib::AssignTag),
        Box::new(stdlib::IncrementTag),
        Box::new(stdlib::DecrementTag),
        Box::new(stdlib::CycleTag),
        Box::new(stdlib::BreakTag),
        Box::new(stdlib::ContinueTag),
        Box::new(bridge::EchoTag),
    ];
    let disabled = DISABLED_TAGS
        .iter()
        .map(|t| Box::new(bridge::DisabledTag(t)) as Box<dyn ParseTag>);
    for tag in tags.into_iter().chain(disabled) {
        lang.tags.register(tag.reflection().tag().to_owned(), tag);
    }
    let blocks: Vec<Box<dyn ParseBlock>> = vec![
        Box::new(condition::IfBlock),
        Box::new(condition::UnlessBlock),
        Box::new(stdlib::CaptureBlock),
        Box::new(stdlib::CommentBlock),
        Box::new(stdlib::RawBlock),
        Box::new(bridge::PlainBlock),
    ];
    for block in blocks {
        lang.blocks
            .register(block.reflection().start_tag().to_owned(), block);
    }
    let known = filters::ALL.iter().map(bridge::JsFilterDef::of);
    // LiquidJS (without `strictFilters`) lets an unknown filter through unchanged.
    let unknown = unknown_filters.iter().map(|name| {
        let (name, run) = filters::identity(name);
        bridge::JsFilterDef::named(name, run)
    });
    for filter in known.chain(unknown) {
        let name = filter.reflection().name().to_owned();
        lang.filters
            .register(name, Box::new(filter) as Box<dyn ParseFilter>);
    }
    lang
}

/// LiquidJS's lenient lookups: a variable or member that is not there is nil, not an error.
struct Lenient<'r>(&'r dyn Runtime);

/// What a missing variable is: JavaScript's `undefined`.
static UNDEFINED: jsval::Js = jsval::Js::Undefined;

impl Runtime for Lenient<'_> {
    fn partials(&self) -> &dyn PartialStore {
        self.0.partials()
    }
    fn name(&self) -> Option<KStringRef<'_>> {
        self.0.name()
    }
    fn roots(&self) -> BTreeSet<KStringCow<'_>> {
        self.0.roots()
    }
    fn try_get(&self, path: &[ScalarCow<'_>]) -> Option<ValueCow<'_>> {
        self.0.try_get(path)
    }
    fn get(&self, path: &[ScalarCow<'_>]) -> liquid_core::Result<ValueCow<'_>> {
        Ok(self
            .0
            .try_get(path)
            .unwrap_or(ValueCow::Borrowed(&UNDEFINED)))
    }
    fn set_global(&self, name: KString, val: Value) -> Option<Value> {
        self.0.set_global(name, val)
    }
    fn set_index(&self, name: KString, val: Value) -> Option<Value> {
        self.0.set_index(name, val)
    }
    fn get_index<'a>(&'a self, name: &str) -> Option<ValueCow<'a>> {
        self.0.get_index(name)
    }
    fn registers(&self) -> &Registers {
        self.0.registers()
    }
}

/// A liquid-rust error as one line, without its `liquid: ` prefix and context.
fn message(e: &liquid_core::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("liquid: ").unwrap_or(first).to_owned()
}

impl Liquid {
    /// Parses a template (at most [`MAX_TEMPLATE_LENGTH`] units, checked by the caller). The
    /// error is the message mapping-kit's `@liquid` throws, where it is known.
    pub(crate) fn parse(source: &str, at: Location) -> Result<Self, String> {
        let scan = bridge::scan(source);
        if let Some((tag, line, col)) = scan.disabled_tag {
            return Err(format!("tag \"{tag}\" is disabled, line:{line}, col:{col}"));
        }
        let prepared = bridge::prepare(source);
        if let Some(literal) = literals::oversized_integer(&prepared) {
            return Err(format!(
                "the integer {literal} does not fit in 64 bits; write it as a string or a decimal"
            ));
        }
        let unknown: Vec<String> = scan
            .filters
            .iter()
            .filter(|(name, _, _)| filters::find(name).is_none())
            .map(|(name, _, _)| name.clone())
            .collect();
        let parsed = if unknown.is_empty() {
            liquid_core::parser::parse(&prepared, language())
        } else {
            liquid_core::parser::parse(&prepared, &language_with(&unknown))
        };
        let template = Template::new(parsed.map_err(|e| message(&e))?);
        Ok(Self {
            source: source.to_owned(),
            template: Arc::new(template),
            at,
        })
    }

    /// Renders against the payload (its members are the template's variables).
    pub(crate) fn render(&self, payload: Handle<'_, '_>) -> Result<String, EvalError> {
        let globals = match jsval::Js::from_handle(payload) {
            o @ jsval::Js::Obj(_) => o,
            _ => jsval::Js::Obj(Vec::new()),
        };
        let runtime = RuntimeBuilder::new().set_globals(&globals).build();
        let mut out = Vec::new();
        self.template
            .render_to(&mut out, &Lenient(&runtime))
            .map_err(|e| EvalError::Directive {
                at: self.at.clone(),
                message: bridge::located(&self.source, &message(&e)),
            })?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}
