//! Placeholder until the subscribe benchmark lands.
fn main() {}
