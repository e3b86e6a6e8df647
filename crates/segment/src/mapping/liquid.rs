//! `@liquid`: LiquidJS templates as Segment configures them.

use super::error::EvalError;
use super::value::Handle;

/// Most UTF-16 units Segment allows in a `@liquid` template.
pub(crate) const MAX_TEMPLATE_LENGTH: usize = 1000;

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Liquid {
    source: String,
}

impl Liquid {
    pub(crate) fn parse(source: &str) -> Result<Self, String> {
        Err(format!("@liquid is not supported yet: {source}"))
    }

    pub(crate) fn render(&self, _payload: Handle<'_, '_>) -> Result<String, EvalError> {
        Ok(self.source.clone())
    }
}
