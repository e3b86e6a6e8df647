//! `{% if %}` / `{% unless %}` with LiquidJS's conditions: `==`, `!=`, `<>`, `<`, `>`, `<=`,
//! `>=`, `contains`, `and`, `or` (one precedence, grouping from the right), `empty` and `blank`
//! as LiquidJS compares them (nil is neither empty nor equal to it), JavaScript's relational
//! comparisons, and only `false` and nil falsy.

use std::io::Write;

use liquid_core::parser::BlockElement;
use liquid_core::runtime::{Expression, Template};
use liquid_core::{
    BlockReflection, Error, Language, ParseBlock, Renderable, Result, Runtime, TagBlock,
    TagTokenIter,
};

use super::jsval::Js;

/// One operand of a condition.
#[derive(Debug)]
enum Operand {
    Empty,
    Blank,
    /// `nil`/`null`: LiquidJS's NullDrop, equal to null and undefined only.
    Nil,
    Value(Expression),
}

/// A value met while evaluating: `empty` and `blank` stay apart from ordinary values.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Empty,
    Blank,
    Nil,
    Js(Js),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    Contains,
}

/// `a op b`, or a lone operand; joined by `and`/`or`, grouped from the right.
#[derive(Debug)]
enum Cond {
    Test(Operand, Option<(Op, Operand)>),
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
}

fn parse_operand(tokens: &mut TagTokenIter<'_>) -> Result<Operand> {
    let token = tokens.expect_next("Value expected")?;
    Ok(match token.as_str() {
        "empty" => Operand::Empty,
        "blank" => Operand::Blank,
        "nil" | "null" => Operand::Nil,
        _ => Operand::Value(token.expect_value().into_result()?),
    })
}

fn parse_condition(mut tokens: TagTokenIter<'_>) -> Result<Cond> {
    let mut tests = Vec::new();
    let mut joins = Vec::new();
    loop {
        let lhs = parse_operand(&mut tokens)?;
        let mut test = Cond::Test(lhs, None);
        match tokens.next() {
            None => {
                tests.push(test);
                break;
            }
            Some(token) => {
                let word = token.as_str().to_owned();
                let op = match word.as_str() {
                    "==" => Some(Op::Eq),
                    "!=" | "<>" => Some(Op::Ne),
                    "<" => Some(Op::Lt),
                    ">" => Some(Op::Gt),
                    "<=" => Some(Op::Le),
                    ">=" => Some(Op::Ge),
                    "contains" => Some(Op::Contains),
                    _ => None,
                };
                let next = if let Some(op) = op {
                    if let Cond::Test(lhs, _) = test {
                        test = Cond::Test(lhs, Some((op, parse_operand(&mut tokens)?)));
                    }
                    tokens.next().map(|t| t.as_str().to_owned())
                } else {
                    Some(word)
                };
                tests.push(test);
                match next.as_deref() {
                    None => break,
                    Some("and") => joins.push(true),
                    Some("or") => joins.push(false),
                    Some(other) => {
                        return Err(Error::with_msg(format!(
                            "unexpected token \"{other}\" in condition"
                        )));
                    }
                }
            }
        }
    }
    let mut cond = tests
        .pop()
        .ok_or_else(|| Error::with_msg("Value expected"))?;
    while let (Some(lhs), Some(and)) = (tests.pop(), joins.pop()) {
        cond = if and {
            Cond::And(Box::new(lhs), Box::new(cond))
        } else {
            Cond::Or(Box::new(lhs), Box::new(cond))
        };
    }
    Ok(cond)
}

fn value(operand: &Operand, runtime: &dyn Runtime) -> Result<Val> {
    Ok(match operand {
        Operand::Empty => Val::Empty,
        Operand::Blank => Val::Blank,
        Operand::Nil => Val::Nil,
        Operand::Value(e) => Val::Js(Js::from_view(e.evaluate(runtime)?.as_view())),
    })
}

fn truthy(v: &Val) -> bool {
    !matches!(
        v,
        Val::Nil | Val::Js(Js::Nil | Js::Undefined | Js::Bool(false))
    )
}

/// EmptyDrop's `equals`.
fn is_empty(v: &Js) -> bool {
    match v {
        Js::Str(s) => s.is_empty(),
        Js::Arr(items) => items.is_empty(),
        Js::Obj(entries) => entries.is_empty(),
        _ => false,
    }
}

/// BlankDrop's `equals`.
fn is_blank(v: &Js) -> bool {
    match v {
        Js::Bool(false) | Js::Nil | Js::Undefined => true,
        Js::Str(s) => s
            .chars()
            .all(|c| super::super::js::trim(c.encode_utf8(&mut [0; 4])).is_empty()),
        other => is_empty(other),
    }
}

/// LiquidJS's `equals`.
fn equals(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::Nil, Val::Nil) => true,
        (Val::Nil, Val::Js(v)) | (Val::Js(v), Val::Nil) => v.is_nil(),
        (Val::Nil, _) | (_, Val::Nil) => false,
        (Val::Empty | Val::Blank, Val::Empty | Val::Blank) => false,
        (Val::Empty, Val::Js(v)) | (Val::Js(v), Val::Empty) => is_empty(v),
        (Val::Blank, Val::Js(v)) | (Val::Js(v), Val::Blank) => is_blank(v),
        (Val::Js(x), Val::Js(y)) => strict_equal(x, y),
    }
}

/// `===`, arrays item by item (LiquidJS's `arrayEquals`). Objects are equal in JavaScript
/// only to themselves; here equal content stands for "the same object" (`{% if o == o %}`).
fn strict_equal(x: &Js, y: &Js) -> bool {
    match (x, y) {
        (Js::Arr(a), Js::Arr(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(p, q)| strict_equal(p, q))
        }
        (Js::Obj(_), Js::Obj(_)) => x == y,
        (Js::Obj(_), _) | (_, Js::Obj(_)) => false,
        (Js::Num(a), Js::Num(b)) => a == b,
        _ => x == y,
    }
}

/// JavaScript's `<` family on two values.
fn relational(x: &Js, y: &Js, op: Op) -> bool {
    let prim = |v: &Js| match v {
        Js::Arr(_) | Js::Obj(_) => Js::Str(v.js_string()),
        other => other.clone(),
    };
    let (x, y) = (prim(x), prim(y));
    if let (Js::Str(a), Js::Str(b)) = (&x, &y) {
        let (a, b): (Vec<u16>, Vec<u16>) = (a.encode_utf16().collect(), b.encode_utf16().collect());
        return match op {
            Op::Lt => a < b,
            Op::Gt => a > b,
            Op::Le => a <= b,
            _ => a >= b,
        };
    }
    let num = |v: &Js| match v {
        Js::Nil | Js::Undefined => f64::NAN,
        other => other.number(),
    };
    let (a, b) = (num(&x), num(&y));
    match op {
        Op::Lt => a < b,
        Op::Gt => a > b,
        Op::Le => a <= b,
        _ => a >= b,
    }
}

fn compare(a: &Val, op: Op, b: &Val) -> bool {
    match op {
        Op::Eq => equals(a, b),
        Op::Ne => !equals(a, b),
        Op::Contains => match (a, b) {
            (Val::Js(Js::Arr(items)), b) => items.iter().any(|i| equals(&Val::Js(i.clone()), b)),
            (Val::Js(Js::Str(s)), Val::Js(needle)) => s.contains(&needle.js_string()),
            (Val::Js(Js::Str(s)), _) => s.contains(""),
            _ => false,
        },
        _ => match (a, b) {
            (Val::Js(x), Val::Js(y)) => relational(x, y, op),
            _ => false,
        },
    }
}

fn eval(cond: &Cond, runtime: &dyn Runtime) -> Result<bool> {
    Ok(match cond {
        Cond::Test(lhs, None) => truthy(&value(lhs, runtime)?),
        Cond::Test(lhs, Some((op, rhs))) => {
            compare(&value(lhs, runtime)?, *op, &value(rhs, runtime)?)
        }
        Cond::And(a, b) => eval(a, runtime)? && eval(b, runtime)?,
        Cond::Or(a, b) => eval(a, runtime)? || eval(b, runtime)?,
    })
}

/// A chain of branches: the first whose condition holds (or the `else`) renders.
#[derive(Debug)]
struct Branches {
    /// (condition, negated, body)
    arms: Vec<(Cond, bool, Template)>,
    otherwise: Option<Template>,
}

impl Renderable for Branches {
    fn render_to(&self, writer: &mut dyn Write, runtime: &dyn Runtime) -> Result<()> {
        for (cond, negated, body) in &self.arms {
            if eval(cond, runtime)? != *negated {
                return body.render_to(writer, runtime);
            }
        }
        match &self.otherwise {
            Some(body) => body.render_to(writer, runtime),
            None => Ok(()),
        }
    }
}

fn parse_branches(
    arguments: TagTokenIter<'_>,
    mut tokens: TagBlock<'_, '_>,
    options: &Language,
    negated: bool,
) -> Result<Box<dyn Renderable>> {
    let mut arms = Vec::new();
    let mut cond = parse_condition(arguments)?;
    let mut negate = negated;
    let mut body = Vec::new();
    let mut otherwise = None;
    while let Some(element) = tokens.next()? {
        match element {
            BlockElement::Tag(tag) => match tag.name() {
                "else" => {
                    otherwise = Some(Template::new(tokens.parse_all(options)?));
                    break;
                }
                "elsif" => {
                    let next = parse_condition(tag.into_tokens())?;
                    arms.push((
                        std::mem::replace(&mut cond, next),
                        negate,
                        Template::new(std::mem::take(&mut body)),
                    ));
                    negate = false;
                }
                _ => body.push(tag.parse(&mut tokens, options)?),
            },
            element => body.push(element.parse(&mut tokens, options)?),
        }
    }
    arms.push((cond, negate, Template::new(body)));
    tokens.assert_empty();
    Ok(Box::new(Branches { arms, otherwise }))
}

#[derive(Clone, Copy)]
pub(crate) struct IfBlock;

impl BlockReflection for IfBlock {
    fn start_tag(&self) -> &str {
        "if"
    }
    fn end_tag(&self) -> &str {
        "endif"
    }
    fn description(&self) -> &str {
        ""
    }
}

impl ParseBlock for IfBlock {
    fn parse(
        &self,
        arguments: TagTokenIter<'_>,
        tokens: TagBlock<'_, '_>,
        options: &Language,
    ) -> Result<Box<dyn Renderable>> {
        parse_branches(arguments, tokens, options, false)
    }
    fn reflection(&self) -> &dyn BlockReflection {
        self
    }
}

#[derive(Clone, Copy)]
pub(crate) struct UnlessBlock;

impl BlockReflection for UnlessBlock {
    fn start_tag(&self) -> &str {
        "unless"
    }
    fn end_tag(&self) -> &str {
        "endunless"
    }
    fn description(&self) -> &str {
        ""
    }
}

impl ParseBlock for UnlessBlock {
    fn parse(
        &self,
        arguments: TagTokenIter<'_>,
        tokens: TagBlock<'_, '_>,
        options: &Language,
    ) -> Result<Box<dyn Renderable>> {
        parse_branches(arguments, tokens, options, true)
    }
    fn reflection(&self) -> &dyn BlockReflection {
        self
    }
}
