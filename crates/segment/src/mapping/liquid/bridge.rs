//! The glue between LiquidJS's language as Segment configures it and liquid-rust: filters as
//! functions on JavaScript values, the tags liquid-rust lacks (`echo`, `block`), the disabled
//! tags, and a scan of the template for what liquid-rust's parser does not take (LiquidJS's
//! `{% liquid %}` and `{%# %}` forms, unknown filters, the positions of refusals).

use std::fmt;
use std::io::Write;

use liquid_core::parser::{FilterArguments, FilterChain, FilterReflection, ParameterReflection};
use liquid_core::runtime::{Expression, Template};
use liquid_core::{
    BlockReflection, Error, Filter, Language, ParseBlock, ParseFilter, ParseTag, Renderable,
    Result, Runtime, TagBlock, TagReflection, TagTokenIter, Value, ValueView,
};

use super::DISABLED_TAGS;
use super::filters::{self, Run};
use super::jsval::Js;

/// A filter of [`filters`], registered under its name.
#[derive(Clone)]
pub(crate) struct JsFilterDef {
    name: String,
    run: Run,
}

impl JsFilterDef {
    pub(crate) fn of(def: &filters::Def) -> Self {
        Self {
            name: def.name.to_owned(),
            run: def.run,
        }
    }

    pub(crate) fn named(name: String, run: Run) -> Self {
        Self { name, run }
    }
}

impl FilterReflection for JsFilterDef {
    fn name(&self) -> &str {
        &self.name
    }
    fn description(&self) -> &str {
        ""
    }
    fn positional_parameters(&self) -> &'static [ParameterReflection] {
        &[]
    }
    fn keyword_parameters(&self) -> &'static [ParameterReflection] {
        &[]
    }
}

impl ParseFilter for JsFilterDef {
    fn parse(&self, arguments: FilterArguments<'_>) -> Result<Box<dyn Filter>> {
        let args = arguments.positional.collect();
        let keywords = arguments.keyword.map(|(k, e)| (k.to_owned(), e)).collect();
        Ok(Box::new(JsFilter {
            name: self.name.clone(),
            run: self.run,
            args,
            keywords,
        }))
    }

    fn reflection(&self) -> &dyn FilterReflection {
        self
    }
}

/// A filter call with its argument expressions.
struct JsFilter {
    name: String,
    run: Run,
    args: Vec<Expression>,
    keywords: Vec<(String, Expression)>,
}

impl fmt::Debug for JsFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for JsFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl Filter for JsFilter {
    fn evaluate(&self, input: &dyn ValueView, runtime: &dyn Runtime) -> Result<Value> {
        let args = self
            .args
            .iter()
            .map(|e| e.evaluate(runtime).map(|v| Js::from_view(v.as_view())))
            .collect::<Result<Vec<_>>>()?;
        let keywords = self
            .keywords
            .iter()
            .map(|(k, e)| {
                e.evaluate(runtime)
                    .map(|v| (k.clone(), Js::from_view(v.as_view())))
            })
            .collect::<Result<Vec<_>>>()?;
        (self.run)(&Js::from_view(input), &args, &keywords)
            .map(Js::into_value)
            .map_err(Error::with_msg)
    }
}

/// A tag Segment disables. The template scan refuses it first, with its position; this stays
/// registered so that no other meaning can be given to it.
#[derive(Clone, Copy)]
pub(crate) struct DisabledTag(pub(crate) &'static str);

impl TagReflection for DisabledTag {
    fn tag(&self) -> &str {
        self.0
    }
    fn description(&self) -> &str {
        ""
    }
}

impl ParseTag for DisabledTag {
    fn parse(&self, _: TagTokenIter<'_>, _: &Language) -> Result<Box<dyn Renderable>> {
        Err(Error::with_msg(format!("tag \"{}\" is disabled", self.0)))
    }
    fn reflection(&self) -> &dyn TagReflection {
        self
    }
}

/// `{% echo value | filters %}`: the same as `{{ value | filters }}`.
#[derive(Clone, Copy)]
pub(crate) struct EchoTag;

impl TagReflection for EchoTag {
    fn tag(&self) -> &str {
        "echo"
    }
    fn description(&self) -> &str {
        ""
    }
}

impl ParseTag for EchoTag {
    fn parse(
        &self,
        mut arguments: TagTokenIter<'_>,
        options: &Language,
    ) -> Result<Box<dyn Renderable>> {
        let chain = match arguments.next() {
            Some(token) => Some(token.expect_filter_chain(options).into_result()?),
            None => None,
        };
        arguments.expect_nothing()?;
        Ok(Box::new(Echo(chain)))
    }
    fn reflection(&self) -> &dyn TagReflection {
        self
    }
}

#[derive(Debug)]
struct Echo(Option<FilterChain>);

impl Renderable for Echo {
    fn render_to(&self, writer: &mut dyn Write, runtime: &dyn Runtime) -> Result<()> {
        if let Some(chain) = &self.0 {
            let value = chain.evaluate(runtime)?;
            let text = Js::from_view(value.as_view()).string();
            writer
                .write_all(text.as_bytes())
                .map_err(|e| Error::with_msg(e.to_string()))?;
        }
        Ok(())
    }
}

/// `{% block [name] %}…{% endblock %}`: without layouts, LiquidJS renders the content.
#[derive(Clone, Copy)]
pub(crate) struct PlainBlock;

impl BlockReflection for PlainBlock {
    fn start_tag(&self) -> &str {
        "block"
    }
    fn end_tag(&self) -> &str {
        "endblock"
    }
    fn description(&self) -> &str {
        ""
    }
}

impl ParseBlock for PlainBlock {
    fn parse(
        &self,
        arguments: TagTokenIter<'_>,
        mut tokens: TagBlock<'_, '_>,
        options: &Language,
    ) -> Result<Box<dyn Renderable>> {
        drop(arguments);
        let template = Template::new(tokens.parse_all(options)?);
        tokens.assert_empty();
        Ok(Box::new(Plain(template)))
    }
    fn reflection(&self) -> &dyn BlockReflection {
        self
    }
}

#[derive(Debug)]
struct Plain(Template);

impl Renderable for Plain {
    fn render_to(&self, writer: &mut dyn Write, runtime: &dyn Runtime) -> Result<()> {
        self.0.render_to(writer, runtime)
    }
}

/// A markup token of a template: `{{ … }}` or `{% … %}`.
struct Token<'a> {
    /// The text between the delimiters, whitespace-control dashes removed.
    inner: &'a str,
    is_tag: bool,
    start: usize,
    end: usize,
}

/// The markup tokens, in order (an unclosed one ends the scan; the parser reports it).
fn tokens(source: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(off) = source[i..].find('{') {
        let start = i + off;
        let rest = &source[start..];
        let (is_tag, close) = if rest.starts_with("{{") {
            (false, "}}")
        } else if rest.starts_with("{%") {
            (true, "%}")
        } else {
            i = start + 1;
            continue;
        };
        let Some(len) = rest[2..].find(close) else {
            break;
        };
        let inner = rest[2..2 + len]
            .trim_start_matches('-')
            .trim_end_matches('-');
        let end = start + 2 + len + 2;
        out.push(Token {
            inner,
            is_tag,
            start,
            end,
        });
        i = end;
        if is_tag && tag_name(inner) == "raw" {
            // A raw block's text is not markup: go on at its `{% endraw %}`.
            i = source[end..]
                .match_indices("{%")
                .map(|(p, _)| end + p)
                .find(|p| {
                    let t = source[p + 2..].trim_start_matches('-').trim_start();
                    t.starts_with("endraw")
                })
                .unwrap_or(source.len());
        }
    }
    out
}

/// What the scan found.
pub(crate) struct Scan {
    /// The first disabled tag, with LiquidJS's line and column of its token.
    pub(crate) disabled_tag: Option<(&'static str, usize, usize)>,
    /// Every filter name used, in order of first use, with the line and column of that use.
    pub(crate) filters: Vec<(String, usize, usize)>,
}

fn line_col(source: &str, at: usize) -> (usize, usize) {
    let before = &source[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(at, |nl| at - nl - 1) + 1;
    (line, col)
}

/// The tag name of a tag token's text.
fn tag_name(inner: &str) -> &str {
    let t = inner.trim_start();
    if t.starts_with('#') {
        return "#";
    }
    let end = t
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(t.len());
    &t[..end]
}

/// Filter names after `|` outside quotes.
fn filter_names(markup: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut quote = None;
    for (i, c) in markup.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '|' => {
                let rest = markup[i + 1..].trim_start();
                let end = rest
                    .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
                    .unwrap_or(rest.len());
                if end > 0 {
                    out.push(rest[..end].to_owned());
                }
            }
            None => {}
        }
    }
    out
}

pub(crate) fn scan(source: &str) -> Scan {
    let mut scan = Scan {
        disabled_tag: None,
        filters: Vec::new(),
    };
    let mut skip_until: Option<&str> = None;
    for token in tokens(source) {
        if token.is_tag {
            let name = tag_name(token.inner);
            if let Some(end) = skip_until {
                if name == end {
                    skip_until = None;
                }
                continue;
            }
            match name {
                "raw" => skip_until = Some("endraw"),
                "comment" => skip_until = Some("endcomment"),
                _ => {}
            }
            if scan.disabled_tag.is_none()
                && let Some(tag) = DISABLED_TAGS.iter().find(|t| **t == name)
            {
                let (line, col) = line_col(source, token.start);
                scan.disabled_tag = Some((tag, line, col));
            }
        } else if skip_until.is_some() {
            continue;
        }
        for name in filter_names(token.inner) {
            if !scan.filters.iter().any(|(n, _, _)| *n == name) {
                let (line, col) = line_col(source, token.start);
                scan.filters.push((name, line, col));
            }
        }
    }
    scan
}

/// LiquidJS's `parseStringLiteral`: the text of a quoted literal (quotes included), escapes
/// decoded (`\n`, `\t`, `\uHHHH`, octal, and any other character as itself).
fn decode_literal(quoted: &str) -> String {
    let chars: Vec<char> = quoted.chars().collect();
    let mut out = String::new();
    let mut i = 1;
    while i + 1 < chars.len() {
        let c = chars[i];
        if c != '\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let Some(&next) = chars.get(i + 1).filter(|_| i + 1 < chars.len() - 1) else {
            i += 1;
            continue;
        };
        match next {
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\u{b}'),
            'u' => {
                let hex: String = chars[i + 2..]
                    .iter()
                    .take(4)
                    .take_while(|c| c.is_ascii_hexdigit())
                    .collect();
                let unit = u32::from_str_radix(&hex, 16).unwrap_or(0);
                out.push(char::from_u32(unit).unwrap_or('\u{FFFD}'));
                i += 2 + hex.len();
                continue;
            }
            '0'..='7' => {
                let oct: String = chars[i + 1..]
                    .iter()
                    .take(3)
                    .take_while(|c| ('0'..='7').contains(c))
                    .collect();
                out.push(
                    char::from_u32(u32::from_str_radix(&oct, 8).unwrap_or(0)).unwrap_or('\u{FFFD}'),
                );
                i += 1 + oct.len();
                continue;
            }
            other => out.push(other),
        }
        i += 2;
    }
    out
}

/// Quoted literals with escapes, rewritten as liquid-rust literals (which have none) where
/// one quote kind is free.
fn rewrite_literals(markup: &str) -> String {
    let mut out = String::with_capacity(markup.len());
    let mut rest = markup;
    while let Some(start) = rest.find(['\'', '"']) {
        out.push_str(&rest[..start]);
        let quote = rest.as_bytes()[start];
        let body = &rest[start + 1..];
        let mut end = None;
        let mut escaped = false;
        for (i, b) in body.bytes().enumerate() {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == quote {
                end = Some(i);
                break;
            }
        }
        let Some(end) = end else {
            out.push_str(&rest[start..]);
            return out;
        };
        let literal = &rest[start..start + end + 2];
        let decoded = decode_literal(literal);
        if !literal.contains('\\') {
            out.push_str(literal);
        } else if !decoded.contains('\'') {
            out.push('\'');
            out.push_str(&decoded);
            out.push('\'');
        } else if !decoded.contains('"') {
            out.push('"');
            out.push_str(&decoded);
            out.push('"');
        } else {
            out.push_str(literal);
        }
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
}

/// Rewrites LiquidJS forms liquid-rust does not parse (`{% liquid %}`, one tag per line,
/// `{%# … %}` comments, escapes in quoted literals), and makes every `{{ … }}` print through
/// `__js_output`, so that values print as LiquidJS prints them (objects as `[object Object]`,
/// arrays joined with nothing, numbers as JavaScript writes them).
pub(crate) fn prepare(source: &str) -> String {
    let mut out = String::with_capacity(source.len() + 16);
    let mut at = 0;
    for token in tokens(source) {
        let name = if token.is_tag {
            tag_name(token.inner)
        } else {
            ""
        };
        out.push_str(&source[at..token.start]);
        at = token.end;
        let text = &source[token.start..token.end];
        let body = &text[2..text.len() - 2];
        let open_dash = body.starts_with('-');
        let close_dash = body.len() > usize::from(open_dash) && body.ends_with('-');
        let inner = &body[usize::from(open_dash)..body.len() - usize::from(close_dash)];
        let (open, close) = match (token.is_tag, open_dash, close_dash) {
            (false, d1, d2) => (if d1 { "{{-" } else { "{{" }, if d2 { "-}}" } else { "}}" }),
            (true, d1, d2) => (if d1 { "{%-" } else { "{%" }, if d2 { "-%}" } else { "%}" }),
        };
        if !token.is_tag {
            if inner.trim().is_empty() {
                out.push_str(text);
            } else {
                out.push_str(open);
                out.push_str(&rewrite_literals(inner));
                out.push_str(" | __js_output ");
                out.push_str(close);
            }
            continue;
        }
        match name {
            "#" => {}
            "liquid" => {
                let body = token.inner.trim_start().trim_start_matches("liquid");
                for line in body
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                {
                    out.push_str("{% ");
                    out.push_str(&rewrite_literals(line));
                    out.push_str(" %}");
                }
            }
            "raw" | "endraw" | "comment" | "endcomment" => out.push_str(text),
            _ => {
                out.push_str(open);
                out.push_str(&rewrite_literals(inner));
                out.push_str(close);
            }
        }
    }
    out.push_str(&source[at..]);
    out
}

/// LiquidJS adds where a render error happened; for a disabled filter, the first use of it.
pub(crate) fn located(source: &str, message: &str) -> String {
    for name in filters::DISABLED {
        if message == filters::disabled(name) {
            if let Some((_, line, col)) = scan(source).filters.iter().find(|(n, _, _)| n == name) {
                return format!("{message}, line:{line}, col:{col}");
            }
        }
    }
    message.to_owned()
}
