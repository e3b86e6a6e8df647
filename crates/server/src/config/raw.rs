//! The configuration file's shape, as serde reads it: every table refuses a key it does not
//! know (`deny_unknown_fields`), every value keeps its span for messages, and nothing is
//! checked beyond its kind. The readers (`validate`, `destination`, ...) turn it into
//! [`super::Config`].
//!
//! Fields are declared in the order the "expected one of ..." messages list them. No type here
//! derives `Debug`: they hold secrets.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use toml::Spanned;

use super::mapping::Mapping;
use super::values::{EnvName, Flag, Float, Int, RateText, Table, Text, array_value};

/// The whole file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) listen: Option<Spanned<Text>>,
    pub(super) storage: Option<Table<RawStorage>>,
    pub(super) admin_token: Option<Spanned<Text>>,
    pub(super) admin_token_env: Option<Spanned<EnvName>>,
    pub(super) ingest: Option<Table<RawIngest>>,
    pub(super) destination: Option<Destinations>,
    pub(super) metrics_listen: Option<Spanned<Text>>,
    pub(super) http: Option<Table<RawHttp>>,
    pub(super) log: Option<Table<RawLog>>,
}

/// `[log]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub(super) format: Option<Spanned<Text>>,
}

/// `[storage]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStorage {
    pub(super) url: Option<Spanned<Text>>,
    pub(super) quick_check_ms: Option<Spanned<Int>>,
    pub(super) lease_seconds: Option<Spanned<Int>>,
    pub(super) pool_size: Option<Spanned<Int>>,
    pub(super) retention: Option<Spanned<Text>>,
}

/// `[ingest]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIngest {
    pub(super) max_event_bytes: Option<Spanned<Int>>,
    pub(super) max_call_bytes: Option<Spanned<Int>>,
    pub(super) max_batch_bytes: Option<Spanned<Int>>,
    pub(super) max_batch_events: Option<Spanned<Int>>,
}

/// `[http]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    pub(super) max_connections: Option<Spanned<Int>>,
    pub(super) header_timeout_ms: Option<Spanned<Int>>,
    pub(super) keep_alive_timeout_ms: Option<Spanned<Int>>,
    pub(super) body_min_rate: Option<Spanned<Int>>,
    pub(super) body_grace_ms: Option<Spanned<Int>>,
    pub(super) write_timeout_ms: Option<Spanned<Int>>,
}

array_value!(
    /// `[[destination]]`: an array of tables.
    Destinations<Table<RawDestination>>,
    "[[destination]] tables"
);

/// One `[[destination]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDestination {
    pub(super) name: Option<Spanned<Text>>,
    pub(super) enabled: Option<Spanned<Flag>>,
    pub(super) api_key: Option<Spanned<Text>>,
    pub(super) api_key_env: Option<Spanned<EnvName>>,
    pub(super) project_type: Option<Spanned<Text>>,
    pub(super) region: Option<Spanned<Text>>,
    pub(super) base_url: Option<Spanned<Text>>,
    pub(super) write_keys: Option<WriteKeys>,
    pub(super) write_keys_env: Option<Spanned<EnvName>>,
    pub(super) webhook_secret: Option<Spanned<Text>>,
    pub(super) webhook_secret_env: Option<Spanned<EnvName>>,
    pub(super) mapping: Option<Spanned<Mapping>>,
    pub(super) audience_defaults: Option<Table<RawAudience>>,
    pub(super) audiences: Option<Audiences>,
    pub(super) retl_sync_mode: Option<Spanned<Text>>,
    pub(super) max_removal_ratio: Option<Spanned<Float>>,
    pub(super) delivery: Option<Table<RawDelivery>>,
}

array_value!(
    /// `write_keys`: an array of strings.
    WriteKeys<Text>,
    "an array of strings"
);

/// `[destination.audience_defaults]` and each `[destination.audiences.<key>]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAudience {
    pub(super) update_existing_users_only: Option<Spanned<Flag>>,
    pub(super) channel_unsubscribe: Option<Spanned<Flag>>,
    pub(super) campaign_id: Option<Spanned<Int>>,
}

/// `[destination.audiences]`: audience settings by audience key, in key order.
pub(super) struct Audiences(pub(super) BTreeMap<AudienceKey, Table<RawAudience>>);

/// An audience key of `[destination.audiences]`: not empty (refused at the key, before its
/// settings are read).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct AudienceKey(pub(super) String);

impl<'de> Deserialize<'de> for AudienceKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let key = String::deserialize(d)?;
        if key.trim().is_empty() {
            return Err(serde::de::Error::custom(
                "an audience key must not be empty",
            ));
        }
        Ok(AudienceKey(key))
    }
}

impl<'de> Deserialize<'de> for Audiences {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V(PhantomData<Audiences>);
        impl<'de> Visitor<'de> for V {
            type Value = Audiences;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of audience keys")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Audiences, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((key, value)) = map.next_entry()? {
                    out.insert(key, value);
                }
                Ok(Audiences(out))
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

/// `[destination.delivery]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDelivery {
    pub(super) batch_size: Option<Spanned<Int>>,
    pub(super) max_request_bytes: Option<Spanned<Int>>,
    pub(super) linger_ms: Option<Spanned<Int>>,
    pub(super) concurrency: Option<Spanned<Int>>,
    pub(super) timeout_ms: Option<Spanned<Int>>,
    pub(super) rate_limits: Option<Table<RawRateLimits>>,
}

/// `[destination.delivery.rate_limits]`: one key per endpoint (those of
/// [`super::ENDPOINT_KEYS`], in that order), and `all`.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Default))]
#[serde(deny_unknown_fields)]
pub(super) struct RawRateLimits {
    pub(super) get_lists: Option<Spanned<RateText>>,
    pub(super) create_list: Option<Spanned<RateText>>,
    pub(super) delete_list: Option<Spanned<RateText>>,
    pub(super) list_size: Option<Spanned<RateText>>,
    pub(super) get_users: Option<Spanned<RateText>>,
    pub(super) subscribe: Option<Spanned<RateText>>,
    pub(super) unsubscribe: Option<Spanned<RateText>>,
    pub(super) user_by_email: Option<Spanned<RateText>>,
    pub(super) user_by_id: Option<Spanned<RateText>>,
    pub(super) all: Option<Spanned<RateText>>,
}

impl RawRateLimits {
    /// Each endpoint's key and value, in [`super::ENDPOINT_KEYS`] order.
    pub(super) fn by_key(&self) -> [(&'static str, Option<&Spanned<RateText>>); 9] {
        [
            ("get_lists", self.get_lists.as_ref()),
            ("create_list", self.create_list.as_ref()),
            ("delete_list", self.delete_list.as_ref()),
            ("list_size", self.list_size.as_ref()),
            ("get_users", self.get_users.as_ref()),
            ("subscribe", self.subscribe.as_ref()),
            ("unsubscribe", self.unsubscribe.as_ref()),
            ("user_by_email", self.user_by_email.as_ref()),
            ("user_by_id", self.user_by_id.as_ref()),
        ]
    }
}

/// The keys serde knows of `T` (a struct of this module), in declaration order: what an
/// unknown key's message lists. Found by asking `T` to deserialize itself from a deserializer
/// that only records the field names it is given.
#[cfg(test)]
pub(super) fn keys_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    #[derive(Debug)]
    struct Found(&'static [&'static str]);
    impl fmt::Display for Found {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{:?}", self.0)
        }
    }
    impl std::error::Error for Found {}
    impl serde::de::Error for Found {
        fn custom<M: fmt::Display>(_: M) -> Self {
            Found(&[])
        }
    }
    struct Recorder;
    impl<'de> Deserializer<'de> for Recorder {
        type Error = Found;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Found> {
            Err(Found(&[]))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Found> {
            Err(Found(fields))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    match T::deserialize(Recorder) {
        Ok(_) => &[],
        Err(Found(fields)) => fields,
    }
}
