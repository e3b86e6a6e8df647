//! Whose webhook it is: the credentials a webhook request carries (a write key, Segment's
//! signatures) and whether they cover its whole body.

use crate::app::DestinationRuntime;
use crate::ingest::{self, IngestError};

use super::ingestion::Received;

/// Whether a webhook's credentials cover its whole body:
/// - a write key in the Authorization header (HTTP Basic), when sent, must be one of the
///   destination's, and covers the whole body;
/// - with a shared secret, `X-Segment-Signature` (when sent; `X-Signature` is then not read)
///   must sign the whole body, else `X-Signature` (when sent) must sign the whole body or, as
///   Webhooks (Actions) signs a batch, its first event: that covers an array of that one event
///   only, and a longer array needs the write key as well ([`IngestError::PartialSignature`]).
///   The signature checked must match, even when a write key would do.
/// - without any credential, the request is refused.
pub(crate) fn webhook_authentic(
    dest: &DestinationRuntime,
    r: &Received,
) -> Result<(), IngestError> {
    let keyed = match &r.header_key {
        Some(k)
            if dest
                .config
                .write_keys
                .iter()
                .any(|w| w.matches(k.as_bytes())) =>
        {
            true
        }
        Some(_) => return Err(IngestError::UnknownWriteKey),
        None => false,
    };
    let Some(secret) = &dest.config.webhook_secret else {
        return if keyed {
            Ok(())
        } else {
            Err(IngestError::MissingWriteKey)
        };
    };
    let key = secret.expose().as_bytes();
    let signed = match (&r.segment_signature, &r.signature) {
        (Some(sig), _) => match ingest::verify_signature(key, &r.body, Some(sig))? {
            ingest::Signed::Body => ingest::Signed::Body,
            ingest::Signed::FirstEvent | ingest::Signed::SoleEvent => {
                return Err(IngestError::BadSignature);
            }
        },
        (None, Some(sig)) => ingest::verify_signature(key, &r.body, Some(sig))?,
        (None, None) if keyed => return Ok(()),
        (None, None) => return Err(IngestError::MissingSignature),
    };
    match signed {
        ingest::Signed::Body | ingest::Signed::SoleEvent => Ok(()),
        ingest::Signed::FirstEvent if keyed => Ok(()),
        ingest::Signed::FirstEvent => Err(IngestError::PartialSignature),
    }
}
