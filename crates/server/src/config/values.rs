//! The kinds of TOML value the configuration is made of, each with the words a message uses
//! for it: a key holding a value of another kind is refused with serde's "invalid type ...,
//! expected <these words>", which [`super::locate`] turns into `key: expected a whole number,
//! got a float`. Ranges and formats are checked later, by the readers of each table.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use toml::Spanned;

use super::error::{Place, R};

/// A string value, refusing other kinds with `$expected`.
macro_rules! string_value {
    ($(#[$doc:meta])* $name:ident, $expected:literal) => {
        $(#[$doc])*
        pub(super) struct $name(pub(super) String);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = String;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expected)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
                        Ok(v.to_owned())
                    }
                }
                d.deserialize_string(V).map($name)
            }
        }
    };
}

string_value!(
    /// A string: an address, a URL, a name, a secret.
    Text,
    "a string"
);
string_value!(
    /// The name of the environment variable holding a secret (the `*_env` keys).
    EnvName,
    "the name of an environment variable"
);
string_value!(
    /// A rate limit of `[destination.delivery.rate_limits]`, read by [`super::rate_limits`].
    RateText,
    "a string like \"20/s\", \"5/min\", \"adaptive\" or \"off\""
);

/// `true` or `false`.
pub(super) struct Flag(pub(super) bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = bool;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true or false")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
                Ok(v)
            }
        }
        d.deserialize_bool(V).map(Flag)
    }
}

/// What a whole number outside of `i64` is refused with.
pub(super) const TOO_LARGE: &str = "the number is too large";

/// A whole number that fits an `i64`.
pub(super) struct Int(pub(super) i64);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_i64(IntVisitor).map(Int)
    }
}

/// Reads a whole number as an `i64`, refusing larger ones with [`TOO_LARGE`].
pub(super) struct IntVisitor;

impl Visitor<'_> for IntVisitor {
    type Value = i64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a whole number")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::custom(TOO_LARGE))
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<i64, E> {
        Err(E::custom(TOO_LARGE))
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<i64, E> {
        Err(E::custom(TOO_LARGE))
    }
}

impl Place {
    /// `key`'s whole number within `min..=max`, or `default` when it is absent.
    pub(super) fn int_in(
        &self,
        key: &str,
        value: Option<&Spanned<Int>>,
        min: i64,
        max: i64,
        default: i64,
    ) -> R<usize> {
        let n = match value {
            None => default,
            Some(v) if (min..=max).contains(&v.get_ref().0) => v.get_ref().0,
            Some(v) => {
                let n = v.get_ref().0;
                let problem = if max == i64::MAX {
                    format!("must be at least {min}, got {n}")
                } else {
                    format!("must be between {min} and {max}, got {n}")
                };
                return Err(self.fail(key, v.span(), problem));
            }
        };
        let span = value.map_or(0..0, Spanned::span);
        usize::try_from(n).map_err(|_| self.fail(key, span, TOO_LARGE))
    }
}

/// A number, whole or not (`0.25`, `1`), read as an `f64`.
pub(super) struct Float(pub(super) f64);

impl<'de> Deserialize<'de> for Float {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = f64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
                Ok(v)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
                Ok(v as f64)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
                Ok(v as f64)
            }
        }
        d.deserialize_f64(V).map(Float)
    }
}

impl Place {
    /// `key`'s number within `0..=1` (a share), or `default` when it is absent.
    pub(super) fn ratio(&self, key: &str, value: Option<&Spanned<Float>>, default: f64) -> R<f64> {
        match value {
            None => Ok(default),
            Some(v) if (0.0..=1.0).contains(&v.get_ref().0) => Ok(v.get_ref().0),
            Some(v) => Err(self.fail(
                key,
                v.span(),
                format!(
                    "must be a share between 0 and 1 (e.g. 0.25 for 25%), got {}",
                    v.get_ref().0
                ),
            )),
        }
    }
}

/// A table read as `T` (a struct of the raw shape). Unlike `T` alone, it refuses an array
/// (serde reads a struct from a sequence of its fields) with "expected a table".
pub(super) struct Table<T>(pub(super) T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Table<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(TABLE)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(V(PhantomData)).map(Table)
    }
}

/// What [`Table`] expects. A TOML date, which serde sees as a map, reaches the table's fields
/// and is refused as an unknown key at the date's span; [`super::locate`] words that as a
/// date where a table was expected.
pub(super) const TABLE: &str = "a table";

/// An array of `T`, refusing other kinds with `$expected`.
macro_rules! array_value {
    ($(#[$doc:meta])* $name:ident<$item:ty>, $expected:literal) => {
        $(#[$doc])*
        pub(super) struct $name(pub(super) Vec<Spanned<$item>>);

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> ::serde::de::Visitor<'de> for V {
                    type Value = Vec<Spanned<$item>>;
                    fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                        f.write_str($expected)
                    }
                    fn visit_seq<A: ::serde::de::SeqAccess<'de>>(
                        self,
                        mut seq: A,
                    ) -> Result<Self::Value, A::Error> {
                        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                        while let Some(item) = seq.next_element()? {
                            out.push(item);
                        }
                        Ok(out)
                    }
                }
                d.deserialize_seq(V).map($name)
            }
        }
    };
}
pub(super) use array_value;
